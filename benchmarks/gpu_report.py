"""Helpers of benchmarks/gpu.sh: `smoke` runs `icsim reproduce NAME --profile full --smoke` for
every registered experiment (the registry is read at run time, so new experiments are included)
and records each one's exit status and wall time; `section` turns the gpu-*.json files into the
"GPU" section of RESULTS.md (on a CUDA run) or a file beside them (the CPU plumbing run).

    python benchmarks/gpu_report.py smoke --device cuda --out results/gpu-reproduce_smoke.json
    python benchmarks/gpu_report.py section --prefix gpu- --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C
import torch

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- gpu.sh: begin (written by benchmarks/gpu_report.py) -->", "<!-- gpu.sh: end -->"


def smoke(args) -> int:
    import icsim.experiments

    machine = C.machine(torch.device(args.device))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs, failed = {}, 0
    with tempfile.TemporaryDirectory(prefix="icsim-gpu-smoke-") as tmp:
        names = args.only or icsim.experiments.names()
        unknown = sorted(set(names) - set(icsim.experiments.names()))
        if unknown:
            sys.exit(f"unknown experiment(s) {unknown}; registered: {icsim.experiments.names()}")
        for name in names:
            cmd = [sys.executable, "-m", "icsim.cli", "reproduce", name, "--profile", "full"]
            cmd += ["--smoke", "--device", args.device, "--quiet", "--out", f"{tmp}/{name}"]
            print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.each_s)
                rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
            except subprocess.TimeoutExpired:
                rc, tail = 124, f"timed out after {args.each_s} s"
            seconds = time.perf_counter() - t0
            metrics = Path(tmp, name, "metrics.json")
            inner = (
                json.loads(metrics.read_text()).get("wall_seconds") if metrics.exists() else None
            )
            runs[name] = {"rc": rc, "seconds": seconds, "wall_seconds_in_metrics": inner}
            if rc:
                failed += 1
                runs[name]["output_tail"] = tail
            print(f"  rc {rc}, {seconds:.1f} s" + (f"\n{tail}" if rc else ""), flush=True)
            # written after every experiment, so a part killed at its time limit keeps the rest
            payload = {"machine": machine, "profile": "full", "smoke": True, "runs": runs}
            args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 1 if failed else 0


def _load(prefix: str, name: str) -> dict | None:
    path = HERE / "results" / f"{prefix}{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def solver_rows(prefix: str) -> list[tuple[str, str, float]]:
    """(solver, reference, speed-up) from the three solver benchmarks' JSON, where present."""
    rows = []
    if mix := _load(prefix, "bench_mixture_em"):
        rows += [(c, "NumPy EM loop", r["speedup"]) for c, r in mix["results"].items()]
    if clu := _load(prefix, "bench_clustering"):
        ref = {"lloyd": "sklearn KMeans", "soft_em": "sklearn GaussianMixture"}
        for alg, r in clu["results"].items():
            rows.append((alg, ref.get(alg, "sklearn"), r["speedup_ratio_of_medians"]))
    if pm := _load(prefix, "bench_power_method"):
        for name, r in pm["results"].items():
            if not name.startswith("part:"):
                rows += [
                    (name, f"sklearn PCA {s}", r["speedup_vs"][s]) for s in ("full", "randomized")
                ]
    return rows


def section(args) -> str:
    p = args.prefix
    lines = [BEGIN, "## GPU: benchmarks/gpu.sh", ""]
    tt, ms, fp, sm = (
        _load(p, n)
        for n in ("train_throughput", "many_seeds", "fraction_of_peak", "reproduce_smoke")
    )
    machine = next((x["machine"] for x in (tt, ms, fp, sm) if x), {})
    lines += [
        f"Device: {machine.get('gpu', machine.get('device', '?'))}; torch {machine.get('torch')}; "
        f"icsim {machine.get('icsim_commit')}; {machine.get('date')}; host load "
        f"{machine.get('load_average_start')}. JSON: `results/{p}*.json`.",
        "",
    ]
    if tt:
        lines += [
            "| config | loop | steps/s | vs reference (target >= 8x on Garg) |",
            "|---|---|---|---|",
        ]
        for cfg, res in tt["results"].items():
            for label, r in res["loops"].items():
                vs = r.get("speedup_vs_reference", {}).get("ratio_of_medians")
                vs_txt = f"{vs:.2f}×" if vs else "no reference (transformers not installed)"
                lines.append(f"| {cfg} | {label} | {C.mmm(r['steps_per_s'])} | {vs_txt} |")
        lines.append("")
    if ms:
        lines += [
            "| trainer | model-steps/s | vs one run (target ≥ 10× at K = 16) |",
            "|---|---|---|",
        ]
        for label, r in ms["results"].items():
            lines.append(
                f"| {label} | {C.mmm(r['model_steps_per_s'])} | {r['vs_one_model_run']:.2f}× |"
            )
        lines.append("")
    if fp:
        for cfg, r in fp["results"]["configs"].items():
            lines.append(
                f"Fraction of the sgemm rate ({cfg}): "
                f"{C.mmm(r['fraction_of_sgemm_peak'], 100)} % "
                f"(train {C.mmm(r['achieved_gflop_per_s'])} GFLOP/s, sgemm "
                f"{C.mmm(fp['results']['sgemm']['gflop_per_s'])} GFLOP/s)."
            )
        lines.append("")
    solvers = solver_rows(p)
    if solvers:
        lines += ["| solver (issues 19–21; target ≥ 50×) | vs | speed-up |", "|---|---|---|"]
        lines += [f"| {name} | {ref} | {x:.1f}× |" for name, ref, x in solvers] + [""]
    if sm:
        lines += ["| experiment (`--profile full --smoke`) | exit | seconds |", "|---|---|---|"]
        for name, r in sm["runs"].items():
            lines.append(f"| {name} | {r['rc']} | {r['seconds']:.1f} |")
        lines.append("")
    parts = HERE / "results" / f"{p}parts.jsonl"
    if parts.exists():
        rows = [json.loads(ln) for ln in parts.read_text().splitlines() if ln.strip()]
        lines.append(
            "Parts (exit status, seconds): "
            + ", ".join(f"{r['part']} {r['rc']} / {r['seconds']} s" for r in rows)
            + "."
        )
        lines.append("")
    lines.append(END)
    text = "\n".join(lines) + "\n"
    if args.device == "cpu":  # the plumbing run never touches the GPU figures of RESULTS.md
        out = HERE / "results" / f"{p}section.md"
        out.write_text(text)
    else:
        out = HERE / "RESULTS.md"
        old = out.read_text()
        if BEGIN in old and END in old:
            old = old[: old.index(BEGIN)] + old[old.index(END) + len(END) + 1 :]
        out.write_text(old.rstrip("\n") + "\n\n" + text)
    print(f"wrote {out}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("smoke")
    s.add_argument("--device", default="cuda")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--each-s", type=float, default=60.0, help="time limit per experiment")
    s.add_argument("--only", nargs="+", default=None, help="these experiments (default: all)")
    r = sub.add_parser("section")
    r.add_argument("--prefix", default="gpu-")
    r.add_argument("--device", default="cuda")
    args = ap.parse_args()
    sys.exit(smoke(args) if args.cmd == "smoke" else section(args))


if __name__ == "__main__":
    main()
