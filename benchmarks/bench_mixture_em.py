"""Batched EM for mixtures of linear regressions against a per-problem NumPy EM loop
(scikit-learn has no mixture-of-regressions estimator). Both run the same EM in float64 from the
same given initialisation on the same data; the answers are compared (max relative |Δβ|) so the
speed-up is at matched accuracy.

    OMP_NUM_THREADS=1 python benchmarks/bench_mixture_em.py --threads 1

Cases: symmetric two-component EM (tanh weights, Balakrishnan et al. 2017) and K = 3 EM with
the closed-form weighted least-squares M-step, 4096 problems, d = 10, n = 100, 20 EM steps.
The NumPy loop runs on a subset of `--loop-problems` problems (default 256) and its time is
scaled by 4096 / subset (it is linear in the number of problems); the table says so. Both are
timed rep by rep, interleaved, so they share the machine's load; the per-problem columns (µs of
one problem's 20 steps, ours = batched time / 4096) are what the ceiling of the ratio comes from.
"""

from __future__ import annotations

import _common as C
import numpy as np
import torch
from scipy.special import logsumexp

import icsim

D, N, STEPS, SIGMA = 10, 100, 20, 1.0


def np_symmetric_em(X, y, beta, steps):
    """One problem: β ← (XᵀX)⁻¹ Xᵀ(tanh(y·Xβ/σ²)·y), (XᵀX)⁻¹Xᵀ computed once (as icsim does)."""
    P = np.linalg.solve(X.T @ X, X.T)
    for _ in range(steps):
        w = np.tanh(y * (X @ beta) / SIGMA**2)
        beta = P @ (w * y)
    return beta


def np_em(X, y, betas, steps):
    """One problem, K components: responsibilities, weighted least squares per k, π = mean r."""
    K = len(betas)
    pi = np.full(K, 1.0 / K)
    for _ in range(steps):
        logp = np.log(pi)[None] - (y[:, None] - X @ betas.T) ** 2 / (2 * SIGMA**2)
        r = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
        betas = np.stack(
            [np.linalg.solve((X * r[:, k, None]).T @ X, X.T @ (r[:, k] * y)) for k in range(K)]
        )
        pi = r.mean(0)
    return betas


def kernel_floor(alg, prob, K):
    """The batched step's irreducible kernels alone, on tensors made once, STEPS times: for
    symmetric EM its two batched mat-vecs and the sigmoid; for K = 3 the r @ moments product
    that builds every Gram matrix. No rewrite of the rest (E-step, Cholesky, Python) can beat
    it, so NumPy loop / floor is the ceiling of the speed-up with these kernels."""
    s = alg.init(prob)
    if K == 2:
        beta, ops = s.beta.unsqueeze(1), s.operators
        return lambda: [
            torch.bmm(torch.sigmoid(torch.bmm(beta, ops.score)), ops.update) for _ in range(STEPS)
        ]
    r = torch.softmax(torch.ones(N, dtype=prob.X.dtype, device=prob.X.device), 0)
    r = r.expand(prob.X.shape[0], K, N).contiguous()
    return lambda: [torch.bmm(r, s.design.moments) for _ in range(STEPS)]


def main():
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=4096)
    p.add_argument("--loop-problems", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    device = C.setup(args)
    info = C.machine(device)
    B, sub = args.problems, min(args.loop_problems, args.problems)
    rows, results = [], {}
    for case, K in (("symmetric EM (K = 2, tanh)", 2), ("EM, K = 3 (weighted LS M-step)", 3)):
        task = icsim.tasks.get("mixture_linear_regression", dim=D, n_components=K, snr=2.0)
        g = torch.Generator(device=device).manual_seed(0)
        batch = task.sample(B, N + 1, generator=g, device=device, dtype=torch.float64)
        prob = batch.split(N)
        init = torch.randn(B, K, D, generator=g, device=device, dtype=torch.float64)
        if K == 2:
            alg = icsim.algorithms.get("symmetric_em", initialization="given", initial=init[:, 0])
        else:
            alg = icsim.algorithms.get(
                "mixture_em", n_components=K, initialization="given", initial=init
            )

        def batched(alg=alg, prob=prob):
            s = alg.init(prob)
            for _ in range(STEPS):
                s = alg.step(prob, s)
            return s[0]  # β [B, d] (symmetric) or β [B, K, d]

        Xs, ys, b0 = (t[:sub].cpu().numpy() for t in (prob.X, prob.y, init))

        def loop(Xs=Xs, ys=ys, b0=b0, K=K):
            if K == 2:
                return np.stack(
                    [np_symmetric_em(Xs[i], ys[i], b0[i, 0], STEPS) for i in range(sub)]
                )
            return np.stack([np_em(Xs[i], ys[i], b0[i], STEPS) for i in range(sub)])

        ours, ref = batched(), loop()  # warm-up, and the answers compared
        absdiff = np.abs(ours[:sub].cpu().numpy().reshape(ref.shape) - ref).max()
        diff = absdiff / np.abs(ref).max()
        floor = kernel_floor(alg, prob, K)
        t_ours, t_loop, t_floor = [], [], []
        for _ in range(args.reps):  # interleaved, so all see the same load
            t_ours.append(C.timed(batched, device))
            t_loop.append(C.timed(loop, device) * B / sub)
            t_floor.append(C.timed(floor, device))
        s_ours, s_loop, s_floor = C.stats(t_ours), C.stats(t_loop), C.stats(t_floor)
        speedup = s_loop["median"] / s_ours["median"]
        ceiling = s_loop["median"] / s_floor["median"]
        results[case] = {
            "icsim_seconds": s_ours, "numpy_loop_seconds_scaled": s_loop, "speedup": speedup,
            "max_relative_difference": float(diff), "max_abs_difference": float(absdiff),
            "loop_subset": sub, "icsim_us_per_problem": s_ours["median"] / B * 1e6,
            "numpy_us_per_problem": s_loop["median"] / B * 1e6,
            "kernel_floor_seconds": s_floor, "ceiling_speedup": ceiling,
        }  # fmt: skip
        per = [f"{s['median'] / B * 1e6:.1f}" for s in (s_ours, s_loop)]
        rows.append([case, C.mmm(s_ours), C.mmm(s_loop), *per, f"{speedup:.1f}×",
                     f"{ceiling:.0f}×", f"{diff:.1e}"])  # fmt: skip
    print(f"{B} problems, d = {D}, n = {N}, {STEPS} EM steps, float64, {args.reps} reps")
    print(f"NumPy loop timed on {sub} problems and scaled by {B / sub:g}\n")
    head = ["case", "icsim batched s", "NumPy loop s (scaled)", "icsim µs/problem"]
    print(C.table([*head, "NumPy µs/problem", "speed-up", "ceiling", "max rel Δβ"], rows))
    print("ceiling: NumPy loop / the batched step's irreducible kernels alone (`kernel_floor`)")
    note = C.contention_note(info)
    if note:
        print(note)
    C.write("bench_mixture_em", args, {"machine": info, "results": results})


if __name__ == "__main__":
    main()
