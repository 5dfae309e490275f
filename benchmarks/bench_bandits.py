"""Batched bandit rollouts against a per-environment NumPy loop (issue 18's speed item): LinUCB
and linear Thompson sampling on 4096 linear bandits (d = 5, K = 10, T = 200, float64), icsim
stepping every environment at once (`icsim.environments.rollout`) against the textbook loop a
researcher would write (one environment at a time, `np.linalg.solve` / Cholesky per step, as in
Lin et al.'s code). The NumPy loop runs on the first `--numpy-envs` environments and its time is
scaled to all of them (its cost is linear in the number of environments: said in the output).
LinUCB is run deterministically (`uniform_first=False`) and Thompson sampling's loop is given the
normals z_t the batched rollout draws (its generator's stream, drawn before the timing, so the
loop's time has no random number generation in it), so the two must choose the same arms: the
fraction of identical actions is reported, with the mean regrets side by side.

    python benchmarks/bench_bandits.py --quick     # 4096 envs, NumPy loop on 256, 5 repetitions
"""

from __future__ import annotations

import statistics

import _common as C
import numpy as np
import torch

import icsim.environments as E
from icsim.environments.policies import LinearThompson, LinUCB
from icsim.environments.rollout import rollout


def numpy_linucb(f, means, noise, T, lam=1.0, alpha=2.0):
    """LinUCB one environment at a time: A = λI + Σ a aᵀ, score ⟨a, ŵ⟩ + α √(aᵀA⁻¹a)."""
    B, K, d = f.shape
    actions = np.zeros((B, T), dtype=np.int64)
    for b in range(B):
        A, xty = lam * np.eye(d), np.zeros(d)
        for t in range(T):
            sol = np.linalg.solve(A, np.column_stack([xty, f[b].T]))
            w, ainv = sol[:, 0], sol[:, 1:]
            k = int(np.argmax(f[b] @ w + alpha * np.sqrt(np.einsum("kd,dk->k", f[b], ainv))))
            a, r = f[b, k], means[b, k] + noise[b, t]
            A += np.outer(a, a)
            xty += a * r
            actions[b, t] = k
    return actions


def numpy_thompson(f, means, noise, T, z, sigma=1.5):
    """Linear Thompson sampling, prior N(0, I), one environment at a time; z [T, B, d] the
    standard normals of every step: w̃ = μ + L⁻ᵀz for the precision P = L Lᵀ."""
    B, K, d = f.shape
    actions = np.zeros((B, T), dtype=np.int64)
    for b in range(B):
        P, xty = np.eye(d), np.zeros(d)
        for t in range(T):
            L = np.linalg.cholesky(P)
            mu = np.linalg.solve(P, xty / sigma**2)
            w = mu + np.linalg.solve(L.T, z[t, b])
            k = int(np.argmax(f[b] @ w))
            a, r = f[b, k], means[b, k] + noise[b, t]
            P += np.outer(a, a) / sigma**2
            xty += a * r
            actions[b, t] = k
    return actions


def regret(means, actions):
    return float(
        (means.max(1, keepdims=True) - np.take_along_axis(means, actions, 1)).sum(1).mean()
    )


def compare(env, policy, loop, reps, n, means, device) -> dict:
    """Median of `reps` alternated timings of the batched rollout and the NumPy loop."""
    ours, ref, out = [], [], {}

    def batched():
        out["ours"] = rollout(env, policy)

    def numpy_loop():
        out["ref"] = loop()

    for _ in range(reps):  # alternate the contenders: both see the same load
        ours.append(C.timed(batched, device))
        ref.append(C.timed(numpy_loop, device))
    ref_scaled = [r * env.n_envs / n for r in ref]
    acts = out["ours"].actions[:n].cpu().numpy()
    return {
        "icsim_s": C.stats(ours), "numpy_s_measured": C.stats(ref),
        "numpy_s_scaled": C.stats(ref_scaled),
        "speedup_median": statistics.median(ref_scaled) / statistics.median(ours),
        "same_actions_fraction": float((acts == out["ref"]).mean()),
        "regret_icsim": regret(means, acts), "regret_numpy": regret(means, out["ref"]),
    }  # fmt: skip


def main():
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=4096)
    p.add_argument("--numpy-envs", type=int, default=256)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="icsim's precision (the NumPy loop is float64 throughout)")  # fmt: skip
    args = p.parse_args()
    device = C.setup(args)
    info = C.machine(device)
    T, n = args.horizon, min(args.numpy_envs, args.envs)
    env = E.get("linear_bandit", horizon=T).sample(
        args.envs, generator=torch.Generator(device=device).manual_seed(0), device=device,
        dtype=torch.float64,
    )  # fmt: skip
    f, means, noise = (x[:n].cpu().numpy() for x in (env.features, env.means, env.noise))
    env = env.to(dtype=getattr(torch, args.dtype)) if args.dtype != "float64" else env
    policies = {"linucb": LinUCB(uniform_first=False), "thompson": LinearThompson()}
    g = torch.Generator(device=device).manual_seed(0)  # `rollout`'s default: one draw per step
    z = torch.stack([policies["thompson"].draw(env, g)[0] for _ in range(T)])[:, :n]
    z = z.double().cpu().numpy()
    loops = {
        "linucb": lambda: numpy_linucb(f, means, noise, T),
        "thompson": lambda: numpy_thompson(f, means, noise, T, z),
    }
    rows, results = [], {}
    for name, pol in policies.items():
        results[name] = compare(env, pol, loops[name], args.reps, n, means, device)
        r = results[name]
        rows.append([
            name, C.mmm(r["icsim_s"]), C.mmm(r["numpy_s_scaled"]), C.fmt(r["speedup_median"]),
            f"{r['same_actions_fraction']:.4f}",
            f"{r['regret_icsim']:.2f} / {r['regret_numpy']:.2f}",
        ])  # fmt: skip
    print(
        f"{args.envs} linear bandits (d = 5, K = 10), T = {T}, {args.dtype}, {info['threads']} "
        f"threads; the NumPy loop ran {n} environments, its time scaled by {args.envs / n:g}"
    )
    heads = ["policy", "icsim s", "NumPy loop s (scaled)", "speed-up", "same actions"]
    print(C.table([*heads, "regret icsim / NumPy"], rows))
    note = C.contention_note({**info, "load_average_end": C.load_average()})
    if note:
        print(note)
    C.write("bench_bandits", args, {"machine": info, "envs": args.envs, "numpy_envs": n,
                                    "horizon": T, "dtype": args.dtype,
                                    "results": results})  # fmt: skip


if __name__ == "__main__":
    main()
