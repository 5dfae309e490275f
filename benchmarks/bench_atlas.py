"""Wall time of `icsim.analysis.atlas` on a Fu et al.-sized model: 12 layers, 8 heads, width 256,
d = 20, 41 points, 320 evaluation prompts and 4096 probe prompts (issue 22's target: <= 2 min on
2 CPU cores), with the time of each phase (probe fit, layer read-outs, induced weights, the
algorithms). The weights are random: the time does not depend on what the model learnt.

    OMP_NUM_THREADS=2 python benchmarks/bench_atlas.py --quick   # 3 repetitions, medians
"""

from __future__ import annotations

import time

import _common as C
import torch

import icsim
from icsim.models import Interleaved, ModelConfig, Transformer

TARGET_SECONDS = 120


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--eval-prompts", type=int, default=320)
    p.add_argument("--probe-prompts", type=int, default=4096)
    p.add_argument("--weight-prompts", type=int, default=64)
    p.add_argument("--reps", type=int, default=3, help="repetitions (median reported)")
    args = p.parse_args()
    device = C.setup(args)
    info = C.machine(device)
    d, n = args.dim, 2 * args.dim + 1
    fmt = Interleaved(d)
    torch.manual_seed(0)
    cfg = ModelConfig(n_dims_in=fmt.width, n_layer=args.layers, n_head=8, n_embd=args.width)
    model = Transformer(cfg).to(device).eval()
    task = icsim.tasks.get("linear_regression", dim=d)
    reps = []
    for _ in range(args.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        a = icsim.analysis.atlas(
            model, fmt, task, n_points=n, eval_prompts=args.eval_prompts,
            probe_prompts=args.probe_prompts, weight_prompts=args.weight_prompts,
            device=str(device),
        )  # fmt: skip
        C.sync(device)
        reps.append({
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "phases": a.settings["seconds"], "phases_cpu": a.settings["cpu_seconds"],
        })  # fmt: skip
        print(f"rep {len(reps)}: {reps[-1]['seconds']:.1f} s wall, {reps[-1]['phases']}")
    med = {k: C.stats(r[k] for r in reps) for k in ("seconds", "cpu_seconds")}
    phases = {k: C.stats(r["phases"][k] for r in reps) for k in reps[0]["phases"]}
    cpus = {k: C.stats(r["phases_cpu"][k] for r in reps) for k in reps[0]["phases"]}
    rows = [[k, C.mmm(phases[k]), C.mmm(cpus[k])] for k in phases]
    rows += [["total", C.mmm(med["seconds"]), C.mmm(med["cpu_seconds"])]]
    print(C.table(["phase", "wall s: median (min-max)", "CPU s (all threads)"], rows))
    idle = med["cpu_seconds"]["median"] / args.threads
    print(f"CPU seconds / threads = {idle:.1f} s: the wall time on idle cores")
    print(f"{len(a.columns)} algorithm columns; target <= {TARGET_SECONDS} s on 2 cores")
    print(C.contention_note(info))
    C.write(
        "bench_atlas",
        args,
        {
            "machine": info,
            "seconds": med["seconds"],
            "cpu_seconds": med["cpu_seconds"],
            "phases": phases,
            "phases_cpu": cpus,
            "reps": reps,
            "columns": [c["name"] for c in a.columns],
            "target_seconds": TARGET_SECONDS,
        },
    )


if __name__ == "__main__":
    main()
