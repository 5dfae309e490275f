"""Many seeds at once: K models of the quick configuration trained together in one process by
`icsim.training.multiseed.MultiSeedTrainer` (one vmapped step over stacked weights, each model
with its own seed, prompts and AdamW state) against one-model `Trainer` runs, in model-steps per
second (K separate runs, one after another, reach the one-model rate), alternated in one process.

    python benchmarks/many_seeds.py --quick
"""

from __future__ import annotations

import statistics

import _common as C
import torch
from train_throughput import CONFIGS, icsim_config

from icsim.training import Trainer
from icsim.training.multiseed import MultiSeedTrainer


def main():
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16], help="models per process")
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions (default 5, 7 without --quick)"
    )
    p.add_argument("--config", default="quick", choices=list(CONFIGS))
    args = p.parse_args()
    device = C.setup(args)
    info = C.machine(device)
    reps = args.reps or (5 if args.quick else 7)
    cfg = icsim_config(CONFIGS[args.config], device)
    model_steps = max(args.ks) * (1 if args.quick else 10)  # per repetition, for every entry
    single = Trainer(cfg, quiet=True)
    multi = {k: MultiSeedTrainer(cfg, list(range(k)), quiet=True) for k in args.ks}
    run = {"one-model Trainer": (single, model_steps)}
    run.update({f"MultiSeedTrainer K={k}": (m, model_steps // k) for k, m in multi.items()})

    def go(trainer, steps):
        for _ in range(steps):
            loss = trainer.train_step()
        loss.sum().item()

    for trainer, _ in run.values():  # warm-up
        go(trainer, 2)
    rates = {label: [] for label in run}
    labels = list(run)
    print(f"{args.config} config, {reps} reps x {model_steps} model-steps each ...", flush=True)
    for r in range(reps):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            trainer, steps = run[label]
            k = getattr(trainer, "n_models", 1)
            rates[label].append(k * steps / C.timed(lambda t=trainer, s=steps: go(t, s), device))
    base = statistics.median(rates["one-model Trainer"])
    results, rows = {}, []
    for label, xs in rates.items():
        s = C.stats(xs)
        results[label] = {
            "models": getattr(run[label][0], "n_models", 1),
            "model_steps_per_s": s,
            "vs_one_model_run": s["median"] / base,
            "vs_one_model_run_per_rep": C.stats(
                [a / b for a, b in zip(xs, rates["one-model Trainer"])]
            ),
        }
        rows.append([label, C.mmm(s), f"{s['median'] / base:.2f}x"])
    print(C.table(["trainer", "model-steps/s", "vs one-model run"], rows))
    payload = {
        "machine": info,
        "config": {**CONFIGS[args.config], "batch_size": cfg.batch_size},
        "reps": reps,
        "model_steps_per_rep": model_steps,
        "results": results,
    }
    C.write("many_seeds", args, payload)
    print(C.contention_note(info))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
