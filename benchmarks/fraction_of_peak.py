"""Fraction of peak: the FLOP/s icsim's training step achieves (FLOPs counted from the model's
shape) over the FLOP/s of a large dense float32 matmul (torch.mm) on the same machine, the two
measured alternately in one process so that both see the same load.

FLOPs of a training step = 3 x forward FLOPs (backward = 2 x forward) x tokens, forward FLOPs per
token from `icsim.models.transformer.flops_per_token` (2 per multiply-add: q/k/v/proj, the
scores and weighted sum over the full sequence, the MLP, read-in/out; layer norms, GELU, softmax
and the optimizer are not counted, so they show up as lost efficiency).

    python benchmarks/fraction_of_peak.py --quick
    python benchmarks/fraction_of_peak.py --quick --configs garg --profile   # + where time goes
"""

from __future__ import annotations

import statistics

import _common as C
import torch
from train_throughput import BATCH, CONFIGS, icsim_config

from icsim.models.transformer import flops_per_token
from icsim.training import Trainer


def mm_rate(m: int, k: int, n: int, device, calls: int) -> float:
    """GFLOP/s of `calls` float32 products [m, k] @ [k, n]."""
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    torch.mm(a, b)  # warm-up

    def run():
        for _ in range(calls):
            torch.mm(a, b)

    return 2 * m * k * n * calls / C.timed(run, device) / 1e9


CATEGORIES = (  # (name, exact op names, substrings); op names as torch.profiler reports them
    ("matmul", ("mm", "addmm", "bmm", "matmul", "linear", "baddbmm"), ()),
    ("attention kernels", (), ("flash", "scaled_dot_product", "softmax", "efficient_attention")),
    ("optimizer", (), ("adam", "_foreach", "clip_grad", "linalg_vector_norm", "zero_grad")),
    ("copies and layout", ("copy_", "clone", "contiguous", "to", "_to_copy", "cat", "stack"), ()),
)


def category(op: str) -> str:
    name = op.removeprefix("aten::").lower()
    for cat, exact, parts in CATEGORIES:
        if name in exact or any(p in name for p in parts):
            return cat
    return "other (layer norm, GELU, elementwise, autograd)"


def profile_steps(trainer, steps: int, top: int = 12) -> dict:
    """Self CPU time of `steps` training steps by op (torch.profiler), grouped in categories."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(steps):
            loss = trainer.train_step()
        loss.item()
    ops = [(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
    total = sum(t for _, t in ops)
    shares: dict = {}
    for op, t in ops:
        shares[category(op)] = shares.get(category(op), 0.0) + t / total
    ops.sort(key=lambda x: -x[1])
    return {
        "steps": steps,
        "self_cpu_seconds": total,
        "share_by_category": dict(sorted(shares.items(), key=lambda x: -x[1])),
        "top_ops": [{"op": op, "share": t / total} for op, t in ops[:top]],
    }


def main():
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions (default 5, 7 without --quick)"
    )
    p.add_argument(
        "--size", type=int, default=None, help="sgemm size N (default 2048 CPU, 8192 GPU)"
    )
    p.add_argument("--profile", action="store_true", help="also profile each config's steps")
    args = p.parse_args()
    device = C.setup(args)
    info = C.machine(device)
    reps = args.reps or (5 if args.quick else 7)
    size = args.size or (2048 if device.type == "cpu" else 8192)
    mm_calls = 3 if device.type == "cpu" else 20
    plan = {"quick": 10, "garg": 2} if args.quick else {"quick": 100, "garg": 30}
    trainers, shapes, flops = {}, {}, {}
    for name in args.configs:
        c = CONFIGS[name]
        t = Trainer(icsim_config(c, device), quiet=True)
        for _ in range(2):
            t.train_step()  # warm-up
        trainers[name] = t
        seq = 2 * c["n_points"]
        flops[name] = 3 * flops_per_token(t.model_cfg, seq) * BATCH * seq
        shapes[name] = (BATCH * seq, c["n_embd"], 4 * c["n_embd"])  # the MLP's first product
    peak, achieved, at_shape = [], {n: [] for n in trainers}, {n: [] for n in trainers}
    print(f"sgemm {size}x{size} and training steps, {reps} alternating reps ...", flush=True)
    for _ in range(reps):
        peak.append(mm_rate(size, size, size, device, mm_calls))
        for name, t in trainers.items():
            steps = plan[name]

            def run(t=t, steps=steps):
                for _ in range(steps):
                    loss = t.train_step()
                loss.item()

            achieved[name].append(flops[name] * steps / C.timed(run, device) / 1e9)
            at_shape[name].append(mm_rate(*shapes[name], device, 20))
    results = {
        "sgemm": {"size": size, "gflop_per_s": C.stats(peak)},
        "configs": {},
    }
    rows = []
    for name in trainers:
        frac = [a / b for a, b in zip(achieved[name], peak)]
        results["configs"][name] = {
            "config": {**CONFIGS[name], "batch_size": BATCH},
            "train_flops_per_step": flops[name],
            "achieved_gflop_per_s": C.stats(achieved[name]),
            "fraction_of_sgemm_peak": C.stats(frac),
            "fraction_ratio_of_medians": statistics.median(achieved[name])
            / statistics.median(peak),
            "mm_at_mlp_shape": {"shape_mkn": shapes[name], "gflop_per_s": C.stats(at_shape[name])},
        }
        rows.append(
            [
                name,
                C.mmm(C.stats(achieved[name])),
                C.mmm(C.stats(peak)),
                C.mmm(C.stats([100 * f for f in frac])) + " %",
                "x".join(map(str, shapes[name])) + ": " + C.mmm(C.stats(at_shape[name])),
            ]
        )
    if args.profile:
        for name, t in trainers.items():
            prof = profile_steps(t, plan[name])
            results["configs"][name]["profile"] = prof
            print(f"\n{name}: self CPU time by category")
            for cat, share in prof["share_by_category"].items():
                print(f"  {cat:48s} {100 * share:5.1f} %")
            for row in prof["top_ops"]:
                print(f"    {row['op']:44s} {100 * row['share']:5.1f} %")
    head = ["config", "train GFLOP/s", f"sgemm {size} GFLOP/s", "fraction", "mm at MLP shape"]
    print(C.table(head, rows))
    C.write("fraction_of_peak", args, {"machine": info, "reps": reps, "results": results})
    print(C.contention_note(info))


if __name__ == "__main__":
    main()
