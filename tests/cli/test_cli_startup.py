"""`icsim --help` and each command's `--help` import no torch and take under half a bare
`import torch` (issue 17, item 7)."""

import json
import subprocess
import sys

import pytest

# in a fresh process: every help, then torch; sys.modules after the helps, and the two timings
PROBE = """
import contextlib, io, json, sys, time
t0 = time.perf_counter()
from icsim.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
t_help = time.perf_counter() - t0
for cmd in ("list", "train", "eval", "reproduce", "construct", "sweep", "describe", "convert"):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([cmd, "--help"])
        except SystemExit:
            pass
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
t0 = time.perf_counter()
import torch
t_torch = time.perf_counter() - t0
print(json.dumps({"loaded": loaded, "help": t_help, "torch": t_torch}))
"""


@pytest.mark.slow
def test_help_imports_no_torch_and_is_quick():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["loaded"] == [], got["loaded"][:5]
    assert got["help"] < 0.5 * got["torch"], got
