"""Batched power method (icsim) against scikit-learn's PCA fitted per problem in a Python loop
(svd_solver "full" and "randomized"), top-k eigenvectors of 4096 problems (d = 20, N = 100,
k = 3) in float64, at matched accuracy.

    python benchmarks/bench_power_method.py --quick      # sklearn loop on 512 problems, scaled

Accuracy is 1 − |cos| between each estimate and numpy.linalg.eigh's eigenvector (worst over
problems and the k vectors). The power method's τ (iterations per vector) is the smallest of a
list whose worst error is at most the target (1e-10, the acceptance test's; chosen untimed);
the same τ is timed. Data: the `pca` task with a planted gap (λ = 1 + gap·(k + 1 − j) above a
bulk in (0, 1]), centred per problem so scikit-learn (which centres) and icsim (uncentred
covariance) solve the same eigenproblem. The sklearn loop may run on a subset and is scaled to
all problems (`--sklearn-problems`); the JSON says so.
"""

from __future__ import annotations

import _common as C
import numpy as np
import torch

import icsim
from icsim.algorithms.power_method import PowerMethod
from icsim.analysis.spectral_metrics import abs_cosine
from icsim.tasks.base import Problem

TAUS = (10, 20, 40, 80, 160, 320)


def worst_error(vectors: np.ndarray, ref: np.ndarray, q: float = 1.0) -> float:
    """The q-quantile over problems (q = 1: the max) of the worst 1 − |cos| over the k vectors
    ([B, d, k] both)."""
    err = (1 - abs_cosine(torch.as_tensor(vectors), torch.as_tensor(ref))).amax(-1)
    return float(torch.quantile(err, q)) if q < 1 else float(err.max())


def power_method(problem, k: int, tau: int) -> torch.Tensor:
    alg = PowerMethod(k=k, iterations=tau)
    state = alg.init(problem)
    for _ in range(k * tau):
        state = alg.step(problem, state)
    return state.vectors


def sklearn_loop(X: np.ndarray, k: int, solver: str) -> np.ndarray:
    from sklearn.decomposition import PCA

    out = np.empty((X.shape[0], X.shape[2], k))
    for i in range(X.shape[0]):
        kw = {"random_state": 0} if solver == "randomized" else {}
        out[i] = PCA(n_components=k, svd_solver=solver, **kw).fit(X[i]).components_.T
    return out


def main():
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--problems", type=int, default=4096)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--gap", type=float, default=3.0, help="planted gap of the pca task")
    p.add_argument("--target", type=float, default=1e-10, help="1 − |cos| to reach")
    p.add_argument(
        "--quantile", type=float, default=0.99,
        help="problems that must reach --target (1 = all; the slowest sample gaps set it)",
    )  # fmt: skip
    p.add_argument("--reps", type=int, default=None, help="icsim reps (default 5; 7 full)")
    p.add_argument("--sklearn-reps", type=int, default=5)
    p.add_argument("--sklearn-problems", type=int, default=None, help="default 512 quick, all")
    args = p.parse_args()
    device = C.setup(args)
    import sklearn

    info = C.machine(device)
    info["sklearn"] = sklearn.__version__
    reps = args.reps or (5 if args.quick else 7)
    n_sk = args.sklearn_problems or (512 if args.quick else args.problems)
    k = args.k

    task = icsim.tasks.get("pca", dim=args.dim, k=k, gap=args.gap)
    g = torch.Generator(device=device).manual_seed(0)
    batch = task.sample(args.problems, args.points, generator=g, device=device, dtype=torch.float64)
    xs = batch.xs - batch.xs.mean(1, keepdim=True)
    X = xs.cpu().numpy()
    problem = Problem(X=xs, y=batch.ys, X_query=xs[:, :0])
    ref = np.linalg.eigh(X.transpose(0, 2, 1) @ X)[1][..., ::-1][..., :k].copy()

    def reached(t):
        return worst_error(power_method(problem, k, t).cpu().numpy(), ref, args.quantile)

    tau = next((t for t in TAUS if reached(t) <= args.target), TAUS[-1])
    ours = {
        f"power_method (tau={tau})": lambda: power_method(problem, k, tau),
        "eigh (batched torch.linalg.eigh)": lambda: torch.linalg.eigh(
            xs.transpose(1, 2) @ xs / xs.shape[1]
        )[1].flip(-1)[..., :k],
    }
    results, rows = {}, []
    sk = {}
    for solver in ("full", "randomized"):
        Xs = X[:n_sk]

        def loop(Xs=Xs, solver=solver):
            return sklearn_loop(Xs, k, solver)

        secs = [C.timed(loop, torch.device("cpu")) for _ in range(args.sklearn_reps)]
        scale = args.problems / n_sk
        sk[solver] = {
            "seconds_measured": C.stats(secs),
            "seconds_scaled_to_all": C.stats([s * scale for s in secs]),
            "problems_measured": n_sk,
            "worst_1_minus_cos": worst_error(sklearn_loop(Xs, k, solver), ref[:n_sk]),
        }
    for name, fn in ours.items():
        secs = [C.timed(fn, device) for _ in range(reps)]
        est = fn().cpu().numpy()
        err = worst_error(est, ref)
        entry = {"seconds": C.stats(secs), "worst_1_minus_cos": err, "speedup_vs": {}}
        entry["quantile_1_minus_cos"] = worst_error(est, ref, args.quantile)
        for solver, s in sk.items():
            speed = s["seconds_scaled_to_all"]["median"] / entry["seconds"]["median"]
            entry["speedup_vs"][solver] = speed
        results[name] = entry
        rows.append([name, C.mmm(entry["seconds"], 1e3), C.fmt(err)]
                    + [f"{entry['speedup_vs'][s]:.0f}x" for s in sk])  # fmt: skip
    for solver, s in sk.items():
        name = f"sklearn PCA {solver} loop (x{args.problems / n_sk:g})"
        err = C.fmt(s["worst_1_minus_cos"])
        rows.append([name, C.mmm(s["seconds_scaled_to_all"], 1e3), err, "", ""])
    print(
        C.table(
            ["method", "ms (median, min-max)", "worst 1-|cos|", "vs full", "vs randomized"], rows
        )
    )
    payload = {
        "machine": info,
        "problems": args.problems,
        "dim": args.dim,
        "points": args.points,
        "k": k,
        "gap": args.gap,
        "target_1_minus_cos": args.target,
        "target_quantile_of_problems": args.quantile,
        "tau": tau,
        "dtype": "float64",
        "reps": {"icsim": reps, "sklearn": args.sklearn_reps},
        "sklearn": sk,
        "results": results,
        "note": f"sklearn loops timed on {n_sk} of {args.problems} problems and scaled linearly",
    }
    C.write("bench_power_method", args, payload)
    print(C.contention_note(info))


if __name__ == "__main__":
    main()
