"""Training throughput: icsim's Trainer.train_step loop against a reference loop built the way
Garg et al. (2022) built theirs, alternated in one process, same model size, batch and length.

The reference follows github.com/dtsip/in-context-learning (src/models.py, train.py,
samplers.py): a Hugging Face `GPT2Model` with a linear read-in and read-out, prompts drawn on the
host every step (`torch.randn` on the CPU, as their GaussianSampler) and copied to the device,
plain eager Adam (= AdamW with weight decay 0), the loss read back with `.item()` every step and
the point-wise loss computed every step.

    python benchmarks/train_throughput.py --quick          # CPU: both configurations, short reps
    python benchmarks/train_throughput.py --device cuda    # GPU: longer reps

Needs Hugging Face `transformers` for the reference (pip install -e '.[bench]'); without it
only icsim's loops are timed.
"""

from __future__ import annotations

import statistics

import _common as C
import torch
from torch import nn

from icsim.models.transformer import flops_per_token
from icsim.training import Curriculum, TrainConfig, Trainer

BATCH = 64
CONFIGS = {  # d, layers, heads, width, points per prompt
    "quick": dict(dim=5, n_layer=4, n_head=4, n_embd=64, n_points=11),
    "garg": dict(dim=20, n_layer=12, n_head=8, n_embd=256, n_points=41),
}


def optional_transformers():
    """Hugging Face transformers for the reference loop, or None (then only icsim is timed and
    the JSON says why: nothing is installed by the benchmark)."""
    try:
        import transformers
    except ImportError:
        print(
            "note: Hugging Face transformers is not installed, so the reference loop is "
            "skipped (install the optional extra: pip install -e '.[bench]')."
        )
        return None
    return transformers


def icsim_config(c: dict, device: torch.device) -> TrainConfig:
    d, n = c["dim"], c["n_points"]
    fixed = Curriculum(enabled=False, dims_start=d, dims_end=d, points_start=n, points_end=n)
    return TrainConfig(
        dim=d,
        n_layer=c["n_layer"],
        n_head=c["n_head"],
        n_embd=c["n_embd"],
        batch_size=BATCH,
        curriculum=fixed,
        device=str(device),
    )


class GargTransformer(nn.Module):
    """Garg et al.'s TransformerModel (src/models.py): GPT2Model between linear maps."""

    def __init__(self, n_dims, n_positions, n_embd, n_layer, n_head):
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config(
            n_positions=2 * n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            use_cache=False,
        )
        self._read_in = nn.Linear(n_dims, n_embd)
        self._backbone = GPT2Model(config)
        self._read_out = nn.Linear(n_embd, 1)

    @staticmethod
    def _combine(xs_b, ys_b):
        """Interleave x's and y's; y sits in the first coordinate of a d-wide token."""
        bsize, points, dim = xs_b.shape
        ys_b_wide = torch.cat(
            (ys_b.view(bsize, points, 1), torch.zeros(bsize, points, dim - 1, device=ys_b.device)),
            axis=2,
        )
        return torch.stack((xs_b, ys_b_wide), dim=2).view(bsize, 2 * points, dim)

    def forward(self, xs, ys):
        embeds = self._read_in(self._combine(xs, ys))
        output = self._backbone(inputs_embeds=embeds).last_hidden_state
        return self._read_out(output)[:, ::2, 0]  # predict only on xs


class GargLoop:
    """Their train.py loop for noiseless linear regression, one step per call."""

    def __init__(self, c: dict, device: torch.device, lr: float = 1e-4):
        torch.manual_seed(0)
        self.c, self.device = c, device
        self.model = GargTransformer(
            c["dim"], c["n_points"], c["n_embd"], c["n_layer"], c["n_head"]
        ).to(device)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    def step(self) -> float:
        d, n = self.c["dim"], self.c["n_points"]
        xs = torch.randn(BATCH, n, d)  # GaussianSampler.sample_xs, on the host
        w_b = torch.randn(BATCH, d, 1)  # LinearRegression task
        ys = (xs @ w_b)[:, :, 0]
        xs, ys = xs.to(self.device), ys.to(self.device)  # xs.cuda(), ys.cuda()
        self.optimizer.zero_grad()
        output = self.model(xs, ys)
        loss = (ys - output).square().mean()
        loss.backward()
        self.optimizer.step()
        value = loss.detach().item()  # host sync every step
        self.pointwise = (output.detach() - ys).square().mean(dim=0)
        return value

    def steps(self, k: int) -> float:
        return [self.step() for _ in range(k)][-1]

    def parameters_used(self) -> int:
        """Parameters excluding GPT-2's token embedding, which inputs_embeds never touches."""
        wte = self.model._backbone.wte.weight.numel()
        return sum(p.numel() for p in self.model.parameters()) - wte


class IcsimLoop:
    """Trainer.train_step, the loss read back once at the end of a repetition (as train())."""

    def __init__(self, cfg: TrainConfig, adamw_loop: bool = False):
        self.trainer = Trainer(cfg, quiet=True)
        if adamw_loop:  # the previous CPU default, for comparison: AdamW's per-parameter loop
            self.trainer.optimizer = torch.optim.AdamW(
                self.trainer.model.parameters(),
                lr=cfg.lr,
                betas=cfg.betas,
                weight_decay=cfg.weight_decay,
                foreach=False,
            )

    def steps(self, k: int) -> float:
        loss = None
        for _ in range(k):
            loss = self.trainer.train_step()
        return loss.item()


def measure(name: str, c: dict, device, reps: int, steps: int, warmup: int, with_ref=True):
    cfg = icsim_config(c, device)
    ref = GargLoop(c, device) if with_ref else None
    loops = {"icsim": IcsimLoop(cfg), "reference": ref} if ref else {"icsim": IcsimLoop(cfg)}
    if device.type == "cpu":
        loops["icsim, AdamW loop (previous default)"] = IcsimLoop(cfg, adamw_loop=True)
    run = {label: (lambda loop=loop: loop.steps(steps)) for label, loop in loops.items()}
    for label in run:  # warm-up: allocator, kernels, lazy optimizer state
        for _ in range(warmup):
            run[label]()
    seconds = {label: [] for label in run}
    labels = list(run)
    for r in range(reps):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:  # rotate the order
            seconds[label].append(C.timed(run[label], device) / steps)
    model_cfg = loops["icsim"].trainer.model_cfg
    tokens = BATCH * 2 * c["n_points"]
    train_flops = 3 * flops_per_token(model_cfg, 2 * c["n_points"]) * tokens  # fwd + 2x bwd
    out = {
        "config": {**c, "batch_size": BATCH, "tokens_per_step": tokens},
        "train_flops_per_step": train_flops,
        "parameters": {
            "icsim": loops["icsim"].trainer.model.num_parameters(),
            "reference_excluding_unused_wte": ref.parameters_used() if ref else None,
        },
        "steps_per_rep": steps,
        "loops": {},
    }
    for label, secs in seconds.items():
        rate = [1 / s for s in secs]
        out["loops"][label] = {
            "seconds_per_step": C.stats(secs),
            "steps_per_s": C.stats(rate),
            "tokens_per_s": C.stats([x * tokens for x in rate]),
            "gflop_per_s": C.stats([x * train_flops / 1e9 for x in rate]),
        }
        if ref:
            out["loops"][label]["speedup_vs_reference"] = {
                "ratio_of_medians": statistics.median(seconds["reference"])
                / statistics.median(secs),
                "per_rep": C.stats([a / b for a, b in zip(seconds["reference"], secs)]),
            }
    return out


def main():
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions (default 5, 7 without --quick)"
    )
    args = p.parse_args()
    transformers = optional_transformers()
    device = C.setup(args)
    info = C.machine(device)
    info["transformers"] = transformers.__version__ if transformers else "not installed"
    reps = args.reps or (5 if args.quick else 7)
    plan = (
        {"quick": (10, 3), "garg": (2, 1)} if args.quick else {"quick": (100, 10), "garg": (30, 5)}
    )
    results = {}
    for name in args.configs:
        steps, warmup = plan[name]
        print(
            f"[{name}] {CONFIGS[name]}, batch {BATCH}: {reps} reps x {steps} steps ...", flush=True
        )
        res = measure(name, CONFIGS[name], device, reps, steps, warmup, transformers is not None)
        results[name] = res
        rows = [
            [
                label,
                C.mmm(r["steps_per_s"]),
                C.mmm(r["tokens_per_s"]),
                C.mmm(r["gflop_per_s"]),
                f"{r['speedup_vs_reference']['ratio_of_medians']:.2f}x" if transformers else "-",
                C.mmm(r["speedup_vs_reference"]["per_rep"]) if transformers else "-",
            ]
            for label, r in res["loops"].items()
        ]
        head = ["loop", "steps/s", "tokens/s", "GFLOP/s", "vs ref", "vs ref per rep"]
        print(C.table(head, rows))
        print(f"parameters: {res['parameters']}")
    payload = {"machine": info, "reps": reps, "results": results}
    C.write("train_throughput", args, payload)
    print(C.contention_note(info))


if __name__ == "__main__":
    main()
