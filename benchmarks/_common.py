"""Shared by the benchmarks: arguments, threads, the machine's description, timing statistics,
tables and JSON results (benchmarks/results/<name>.json)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
# Time this checkout's code, not whatever icsim the interpreter has installed (a benchmark run
# from another tree's virtual environment would otherwise measure that tree).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer steps/repetitions (a CPU)")
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS", "2")),
        help="torch (and BLAS) threads; default $OMP_NUM_THREADS or 2",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default results/NAME.json)")
    return p


def setup(args) -> torch.device:
    if args.threads < 1:
        sys.exit(f"--threads must be >= 1, got {args.threads}.")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda was asked for but CUDA is not available here; use --device cpu.")
    return device


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine(device: torch.device) -> dict:
    """Where and when the numbers were taken."""
    import numpy

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(device),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "load_average_start": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        from icsim import provenance

        info["icsim_commit"] = provenance.git_commit()
    except ImportError:
        pass
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds one call of `fn` takes, device work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def stats(values) -> dict:
    values = list(values)
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
    }


def fmt(x: float, digits: int = 3) -> str:
    if x == 0 or not (1e-3 <= abs(x) < 1e6):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:,.0f}"


def mmm(s: dict, scale: float = 1.0) -> str:
    """'median (min-max)' of a stats dict."""
    return f"{fmt(s['median'] * scale)} ({fmt(s['min'] * scale)}-{fmt(s['max'] * scale)})"


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(name: str, args, payload: dict) -> Path:
    path = args.out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = [
        f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
    ]
    payload = {
        "benchmark": name,
        "command": " ".join([*env, Path(sys.executable).name, *sys.argv]),
        **payload,
    }
    payload.setdefault("machine", {})["load_average_end"] = load_average()
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"\nwrote {path}")
    return path


def contention_note(info: dict) -> str:
    """A plain warning when other jobs shared the machine (1-min load average above 1)."""
    loads = [x for x in (info.get("load_average_start"), info.get("load_average_end")) if x]
    worst = max((x[0] for x in loads), default=0.0)
    if worst > 1:
        return (
            f"note: 1-minute load average up to {worst} on {info['cores']} cores while measuring: "
            "the machine was shared with other jobs, so these figures are noisy."
        )
    return ""
