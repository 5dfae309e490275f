"""Where a reproduction's wall time goes: training (inside the one Trainer's loop) against the
rest (evaluation, probes, baselines, figures), read from the run directories' metrics.json
(`wall_seconds`, `training_seconds`; icsim records both since 2026-12-02).

    python benchmarks/quick_breakdown.py RUN_DIR... [--out results/quick_breakdown.json]

Prints a markdown table, one row per run, and flags runs whose time outside training is more
than a quarter of the wall time (issue 16's threshold for cutting it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

THRESHOLD = 0.25  # share of the wall time outside training above which a run is flagged


def breakdown(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    if "training_seconds" not in metrics:
        sys.exit(f"{run}/metrics.json has no training_seconds: rerun it with this icsim.")
    wall, train = metrics["wall_seconds"], metrics["training_seconds"]
    return {
        "experiment": metrics["experiment"],
        "profile": metrics["profile"],
        "git_commit": metrics.get("git_commit"),
        "wall_s": wall,
        "training_s": train,
        "outside_s": wall - train,
        "outside_share": (wall - train) / wall,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="reproduction directories")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    rows = [breakdown(r) for r in args.runs if (r / "metrics.json").exists()]
    print("| experiment | profile | wall s | training s | outside training s | share outside |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        flag = " **> ¼**" if r["outside_share"] > THRESHOLD else ""
        print(
            f"| {r['experiment']} | {r['profile']} | {r['wall_s']:.0f} | {r['training_s']:.0f} "
            f"| {r['outside_s']:.0f} | {r['outside_share']:.0%}{flag} |"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
