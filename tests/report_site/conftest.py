"""Tiny synthetic directories for the report-site tests (written here in a second, not trained),
and a headless-Chromium page loader speaking the DevTools protocol over a pipe."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from icsim.analysis.atlas import atlas
from icsim.analysis.plots import plot_curves
from icsim.report_site.sources import construction_source

REPORT = """# In-context linear regression (Garg et al. 2022, Fig. 2)

Reproduction `garg2022-linear-regression` of Garg et al., *What Can Transformers Learn*.

## Our numbers beside the paper's

| quantity | ours | paper | note |
|---|---|---|---|
| transformer error at k = d | {err} | 0.02 | paper: d = 20 |

## The paper's findings, judged from our numbers

- ✅ As in the paper, least squares is exact past k = d.
- {mark} The transformer's error falls past k = d.

## Figures

![error_vs_examples](error_vs_examples.png)

## How this was measured

Every curve is the normalised squared error on `8` prompts.
"""


def reproduction(root: Path, name: str, err: float, mark: str, commit: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    ks = list(range(6))
    curves = {
        "transformer": {"x": ks, "y": [1 / (k + 1) + err for k in ks], "x_label": "k",
                        "y_label": "squared error / d"},
        "least_squares": {"x": ks, "y": [1.0, 0.5, 1e-3, 1e-9, 1e-12, 1e-12], "x_label": "k",
                          "y_label": "squared error / d"},
    }  # fmt: skip
    metrics = {
        "experiment": "garg2022-linear-regression", "profile": "quick", "device": "cpu",
        "icsim_version": "0.1.0", "git_commit": commit, "wall_seconds": 12.0, "curves": curves,
        "scalars": {"transformer_error_at_k_eq_d": err},
        "paper": {"transformer_error_at_k_eq_d": 0.02},
    }  # fmt: skip
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "config.json").write_text(json.dumps({"experiment": metrics["experiment"], "config": {}}))
    (d / "report.md").write_text(REPORT.format(err=err, mark=mark))
    plot_curves(curves, d / "error_vs_examples.png", logy=True)
    return d


@pytest.fixture(scope="session")
def site_dirs(tmp_path_factory) -> list[Path]:
    """Two reproductions of one experiment (one passes, one differs), a training run with a
    loss log, and an atlas of the gd construction."""
    root = tmp_path_factory.mktemp("runs")
    a = reproduction(root, "garg-seed0", 0.01, "✅", "aaaa1111")
    b = reproduction(root, "garg-seed1", 0.3, "❌", "bbbb2222")
    run = root / "train-run"
    (run / "checkpoints" / "step_00000002").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "linear_regression", "dim": 3}))
    rows = [{"step": s, "loss": 2.0 / s} for s in (1, 2)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = construction_source("gd:dim=2,steps=2")
    res = atlas(src.model, src.fmt, src.task, n_points=src.n_points, extra=src.extra,
                sample=src.sample, eval_prompts=16, weight_prompts=4, max_step=8)  # fmt: skip
    res.write(run / "atlas", "gd")
    return [a, b, run]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    try:  # Playwright's Chromium, if that is what is installed
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            return p.chromium.executable_path
    except Exception:  # noqa: BLE001 - not installed, or no browser downloaded
        return None


class Page:
    """What a page did when loaded: console errors, exceptions, failed loads, broken images,
    links, and a PNG screenshot."""

    def __init__(self):
        self.errors: list[str] = []
        self.broken_images: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.screenshot: bytes = b""


def load_page(chromium: str, url: str, width: int = 1200, height: int = 1600) -> Page:
    """Open `url` in headless Chromium over the DevTools pipe (fds 3/4), wait for `load`, and
    record every console error, uncaught exception and failed resource, the images that did not
    decode, the links, and a screenshot."""
    r_in, w_in = os.pipe()  # we write commands -> chromium reads fd 3
    r_out, w_out = os.pipe()  # chromium writes fd 4 -> we read
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--window-size={width},{height}", "--no-first-run", "about:blank"]  # fmt: skip

    def fds():  # dup2'd descriptors are inheritable, so 3 and 4 survive the exec
        a, b = os.dup(r_in), os.dup(w_out)  # in case r_in or w_out is itself 3 or 4
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(r_in), os.close(w_out)
    reader, writer = os.fdopen(r_out, "rb"), os.fdopen(w_in, "wb")
    page, buf, ids, events = Page(), b"", iter(range(1, 10**6)), []

    def call(method, session=None, **params):
        nonlocal buf
        i = next(ids)
        msg = {"id": i, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        writer.write(json.dumps(msg).encode() + b"\0")
        writer.flush()
        deadline = time.time() + 60
        while time.time() < deadline:
            while b"\0" not in buf:
                chunk = os.read(reader.fileno(), 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                buf += chunk
            raw, buf = buf.split(b"\0", 1)
            m = json.loads(raw)
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            events.append(m)
        raise TimeoutError(method)

    try:
        target = call("Target.createTarget", url="about:blank")["targetId"]
        s = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            call(f"{domain}.enable", s)
        call("Page.navigate", s, url=url)
        for _ in range(200):  # until the load event
            if any(e.get("method") == "Page.loadEventFired" for e in events):
                break
            call("Runtime.evaluate", s, expression="1")
            time.sleep(0.05)
        js = ("JSON.stringify({broken: Array.from(document.images).filter(i => !i.complete || "
              "i.naturalWidth === 0).map(i => i.src), images: Array.from(document.images)"
              ".map(i => i.src), links: Array.from(document.links).map(a => a.href)})")  # fmt: skip
        found = json.loads(call("Runtime.evaluate", s, expression=js)["result"]["value"])
        page.broken_images, page.images = found["broken"], found["images"]
        page.links = found["links"]
        shot = call("Page.captureScreenshot", s, format="png", captureBeyondViewport=True)
        page.screenshot = base64.b64decode(shot["data"])
        for e in events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                page.errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
                page.errors.append(str([a.get("value") for a in p.get("args", [])]))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                page.errors.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
    finally:
        writer.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.close()
    return page


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium found (looked for chromium, chromium-browser, google-chrome and "
            "Playwright's): install it with `apt-get install -y chromium` to run the browser test"
        )
    return path


@pytest.fixture(scope="session")
def browse():
    return load_page
