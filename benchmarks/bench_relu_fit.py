"""One chunk of wu2025's baseline fits (`relu_network_trained.fit`: a width-200 ReLU network
trained with full-batch Adam for 100 epochs on each prompt) against the same algorithm as it
was at git commit `--ref` (default: before issue 16's rewrite, unfused Adam on the flat w̄),
loaded from git into this process and timed in turn, rep by rep, on the same prompts and start.

The quick profile's sizes by default: 100 prompts (`WuConfig.chunk`), k = 20 examples, d = 5,
3-layer networks, float32. The answers are compared (max |Δ prediction| at the queries), so the
speed-up is at matched results (float32: Adam's m/√v amplifies rounding over 100 epochs).

    python benchmarks/bench_relu_fit.py --threads 1 --reps 5
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as C
import torch

import icsim
from icsim.tasks.relu_network import network_forward

ROOT = Path(__file__).resolve().parent.parent
MODULE = "src/icsim/algorithms/deep_gd.py"


def reference(commit: str):
    """`ReluNetworkTrained` as it was at `commit` (registered under other names)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{MODULE}"],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    for name in ("relu_network_gd", "relu_network_trained"):
        src = src.replace(f'register("{name}")', f'register("ref_{name}")')
    path = Path(tempfile.mkdtemp()) / "ref_deep_gd.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ref_deep_gd", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ref_deep_gd"] = mod
    spec.loader.exec_module(mod)
    return mod.ReluNetworkTrained


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--ref", default="0142dc1", help="git commit of the reference (default 0142dc1)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=100)
    p.add_argument("--examples", type=int, default=20)
    p.add_argument("--dim", type=int, default=5)
    p.add_argument("--depth", type=int, default=3)
    args = p.parse_args()
    device = C.setup(args)
    info = C.machine(device)
    task = icsim.tasks.get("relu_network_regression", dim=args.dim, depth=args.depth)
    g = torch.Generator(device=device).manual_seed(0)
    batch = task.sample(args.prompts, args.examples + 1, generator=g, device=device)
    problem = batch.split(args.examples)
    kw = dict(depth=args.depth, width=200, epochs=100, lr=0.01)
    algs = {"icsim": icsim.algorithms.get("relu_network_trained", **kw),
            f"ref {args.ref}": reference(args.ref)(**kw)}  # fmt: skip
    times, weights = {name: [] for name in algs}, {}

    def fit(name):
        weights[name] = algs[name].fit(problem)

    for rep in range(args.reps):
        for name in algs:
            times[name].append(C.timed(lambda: fit(name), device))  # noqa: B023 (called here)
        print(rep, {k: round(v[-1], 3) for k, v in times.items()}, flush=True)
    shape = algs["icsim"].shape(problem)
    preds = {k: network_forward(shape, w, problem.X_query) for k, w in weights.items()}
    ours, ref = preds.values()
    s = {k: C.stats(v) for k, v in times.items()}
    speedup = s[f"ref {args.ref}"]["median"] / s["icsim"]["median"]
    rows = [[k, C.mmm(v)] for k, v in s.items()]
    print(C.table(["fit", "seconds median (min-max)"], rows))
    dev = (ours - ref).abs().max().item()
    print(f"speed-up {speedup:.2f}x; max |Δ prediction| {dev:.2e} (|prediction| ≤ "
          f"{ref.abs().max().item():.2f})")  # fmt: skip
    note = C.contention_note(info)
    if note:
        print(note)
    payload = {"machine": info, "sizes": vars(args) | {"out": None}, "seconds": s}
    payload |= {"speedup": speedup, "max_abs_prediction_difference": dev}
    C.write("bench_relu_fit", args, payload)


if __name__ == "__main__":
    main()
