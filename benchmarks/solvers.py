"""Batched solvers against scikit-learn: icsim solves all problems in one batched call, the
baseline fits one scikit-learn estimator per problem in a Python loop; both in float64 on the
same data, the answers compared (max |Δw|) so that the speed-up is at matched accuracy.

    python benchmarks/solvers.py --quick        # 4096 problems, d = 20, n = 40
    python benchmarks/solvers.py --quick --alternatives   # also faster formulations (not in icsim)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import _common as C
import numpy as np
import torch

import icsim
from icsim.algorithms.sparse import Lasso, lipschitz_constant, soft_threshold
from icsim.tasks.base import Problem

RIDGE_ALPHA = 1.0  # scikit-learn's and icsim's λ in ‖y − Xw‖² + λ‖w‖²
MU = 0.1  # icsim's logistic μ: (1/n) Σ log(1 + e^{−y wᵀx}) + (μ/2)‖w‖²; sklearn C = 1/(μ n)
LAM = 0.1  # LASSO λ in (1/2n)‖y − Xw‖² + λ‖w‖₁ (sklearn's alpha)


@dataclass
class Case:
    name: str
    task: str
    task_params: dict
    icsim: Callable[[Problem], torch.Tensor]  # batched solve -> w [B, d]
    sklearn: Callable[[int], object]  # n -> a fresh estimator
    sklearn_name: str
    note: str = ""


def newton_steps_needed(alg, problem, tol=1e-13, cap=50) -> int:
    """Steps until every problem's Newton step is below `tol` (untimed, to fix the count)."""
    w = alg.init(problem)
    for t in range(1, cap + 1):
        new = alg.step(problem, w)
        if (new - w).abs().max().item() <= tol:
            return t
        w = new
    return cap


def run_steps(alg, problem, steps):
    w = alg.init(problem)
    for _ in range(steps):
        w = alg.step(problem, w)
    return w


def cases(logistic_steps: dict) -> list[Case]:
    from sklearn.linear_model import Lasso as SkLasso
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    newton = icsim.algorithms.get("logistic_newton", mu=MU)
    return [
        Case(
            "least squares",
            "linear_regression",
            {"noise_std": 0.5},
            lambda p: icsim.algorithms.get("least_squares").init(p),
            lambda n: LinearRegression(fit_intercept=False),
            "LinearRegression(fit_intercept=False)",
            "icsim: pinv (SVD), minimum-norm",
        ),
        Case(
            "ridge",
            "linear_regression",
            {"noise_std": 0.5},
            lambda p: icsim.algorithms.get("ridge", alpha=RIDGE_ALPHA).init(p),
            lambda n: Ridge(alpha=RIDGE_ALPHA, fit_intercept=False),
            f"Ridge(alpha={RIDGE_ALPHA}, fit_intercept=False)",
        ),
        Case(
            "logistic (Newton)",
            "logistic_regression",
            {},
            lambda p: run_steps(newton, p, logistic_steps["steps"]),
            lambda n: LogisticRegression(
                C=1 / (MU * n), fit_intercept=False, solver="newton-cholesky", tol=1e-10
            ),
            "LogisticRegression(C=1/(μn), solver='newton-cholesky', tol=1e-10)",
            f"icsim: logistic_newton(mu={MU}), steps until every step < 1e-13",
        ),
        Case(
            "LASSO",
            "sparse_recovery",
            {"sparsity": 3, "noise_std": 0.1},
            lambda p: icsim.algorithms.get("lasso", lam=LAM).init(p),
            lambda n: SkLasso(alpha=LAM, fit_intercept=False, tol=1e-10, max_iter=100_000),
            f"Lasso(alpha={LAM}, fit_intercept=False, tol=1e-10)",
            "icsim: lasso (FISTA + restart to tol 1e-12, support polish)",
        ),
    ]


# -- faster formulations, measured for the algorithms' owners (not what icsim ships) --------
def least_squares_qr(p: Problem) -> torch.Tensor:
    """Full-column-rank least squares by batched QR (LAPACK gels); valid when n >= d."""
    return torch.linalg.lstsq(p.X, p.y.unsqueeze(-1), driver="gels").solution.squeeze(-1)


def lasso_gram(p: Problem, tol=1e-12, max_iter=100_000) -> torch.Tensor:
    """icsim's lasso with every iteration on the Gram matrix XᵀX/n [d, d] and Xᵀy/n (formed
    once) instead of X [n, d]: the same FISTA + restart + polish, fewer FLOPs per step."""
    X, y = p.X, p.y
    n = max(X.shape[1], 1)
    gram = X.transpose(1, 2) @ X / n
    corr = torch.einsum("bnd,bn->bd", X, y) / n
    eta = (1.0 / lipschitz_constant(X)).unsqueeze(-1)
    beta = X.new_zeros(X.shape[0], X.shape[2])
    z, t = beta.clone(), X.new_ones(X.shape[0])
    for it in range(max_iter):
        grad = torch.einsum("bij,bj->bi", gram, z) - corr
        new = soft_threshold(z - eta * grad, eta * LAM)
        restart = ((z - new) * (new - beta)).sum(-1) > 0
        t = torch.where(restart, torch.ones_like(t), t)
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        z = new + ((t - 1) / t_next).unsqueeze(-1) * (new - beta)
        moved = (new - beta).abs().amax()
        beta, t = new, t_next
        if it % 50 == 49 and moved <= tol * max(1.0, beta.abs().amax().item()):
            break
    return Lasso(lam=LAM)._polish(X, y, beta)


ALTERNATIVES = {"least squares": least_squares_qr, "LASSO": lasso_gram}


def compare(w: np.ndarray, ref: np.ndarray) -> dict:
    diff = np.abs(w - ref)
    rel = np.linalg.norm(w - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)
    return {"max_abs_diff": float(diff.max()), "max_rel_diff": float(rel.max())}


def measure(case: Case, args, device, reps: int, sk_reps: int, logistic_steps: dict):
    """Time one solver family both ways on the same float64 problems; compare the answers."""
    from threadpoolctl import threadpool_limits

    B, d, n = args.problems, args.dim, args.points
    g = torch.Generator(device=device).manual_seed(0)
    task = icsim.tasks.get(case.task, dim=d, **case.task_params)
    batch = task.sample(B, n, generator=g, device=device, dtype=torch.float64)
    problem = Problem(batch.xs, batch.ys, batch.xs[:, :1])  # every point is context
    X, y = batch.xs.cpu().numpy(), batch.ys.cpu().numpy()
    if case.name.startswith("logistic"):
        alg = icsim.algorithms.get("logistic_newton", mu=MU)
        logistic_steps["steps"] = newton_steps_needed(alg, problem)
        case.note += f" = {logistic_steps['steps']}"
    print(f"[{case.name}] {B} problems, d={d}, n={n} ...", flush=True)
    w = case.icsim(problem)  # warm-up
    icsim_s = [C.timed(lambda: case.icsim(problem), device) for _ in range(reps)]
    coefs = []

    def sklearn_loop():
        coefs[:] = [np.ravel(case.sklearn(n).fit(X[i], y[i]).coef_) for i in range(B)]

    with threadpool_limits(args.threads):
        sk_s = [C.timed(sklearn_loop, torch.device("cpu")) for _ in range(sk_reps)]
    coefs = np.stack(coefs)
    acc = compare(w.cpu().numpy(), coefs)
    speed = statistics.median(sk_s) / statistics.median(icsim_s)
    entry = {
        "icsim": case.note or case.name,
        "sklearn": case.sklearn_name,
        "icsim_seconds": C.stats(icsim_s),
        "sklearn_seconds": C.stats(sk_s),
        "speedup_ratio_of_medians": speed,
        "speedup_range": [min(sk_s) / max(icsim_s), max(sk_s) / min(icsim_s)],
        "accuracy_vs_sklearn": acc,
    }
    rows = [
        [
            case.name,
            C.mmm(entry["icsim_seconds"], 1e3),
            C.mmm(entry["sklearn_seconds"], 1e3),
            f"{speed:.1f}x",
            f"{acc['max_abs_diff']:.1e}",
        ]
    ]
    if args.alternatives and case.name in ALTERNATIVES:
        alt = ALTERNATIVES[case.name]
        wa = alt(problem)
        alt_s = [C.timed(lambda: alt(problem), device) for _ in range(reps)]
        acc_a = compare(wa.cpu().numpy(), coefs)
        speed_a = statistics.median(sk_s) / statistics.median(alt_s)
        entry["alternative"] = {
            "what": alt.__doc__.split("\n")[0],
            "seconds": C.stats(alt_s),
            "speedup_ratio_of_medians": speed_a,
            "accuracy_vs_sklearn": acc_a,
        }
        rows.append(
            [
                f"  alt: {alt.__name__}",
                C.mmm(entry["alternative"]["seconds"], 1e3),
                "",
                f"{speed_a:.1f}x",
                f"{acc_a['max_abs_diff']:.1e}",
            ]
        )
    return entry, rows


def main():
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--problems", type=int, default=4096)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--reps", type=int, default=None, help="icsim reps (default 5; 7 full)")
    p.add_argument("--sklearn-reps", type=int, default=None, help="default 3; 5 full")
    p.add_argument("--only", nargs="+", default=None, help="solver names to run")
    p.add_argument("--alternatives", action="store_true", help="also time faster formulations")
    args = p.parse_args()
    device = C.setup(args)
    import sklearn

    info = C.machine(device)
    info["sklearn"] = sklearn.__version__
    reps = args.reps or (5 if args.quick else 7)
    sk_reps = args.sklearn_reps or (3 if args.quick else 5)
    logistic_steps: dict = {}
    results, rows = {}, []
    for case in cases(logistic_steps):
        if args.only and case.name not in args.only:
            continue
        results[case.name], case_rows = measure(case, args, device, reps, sk_reps, logistic_steps)
        rows += case_rows
    head = ["solver", "icsim ms", "sklearn loop ms", "speed-up", "max |Δw|"]
    print(C.table(head, rows))
    payload = {
        "machine": info,
        "problems": args.problems,
        "dim": args.dim,
        "points": args.points,
        "dtype": "float64",
        "reps": {"icsim": reps, "sklearn": sk_reps},
        "results": results,
    }
    C.write("solvers", args, payload)
    print(C.contention_note(info))


if __name__ == "__main__":
    main()
