"""Batched solvers against scikit-learn: icsim solves all problems in one batched call, the
baseline fits one scikit-learn estimator per problem in a Python loop; both in float64 on the
same data, the answers compared (max |Δw| and, for the regularised fits, the objective gap) so
that the speed-up is at matched accuracy. The two are alternated repetition by repetition so that
load from other jobs hits both alike; the speed-up is the ratio of medians.

    python benchmarks/solvers.py --quick --threads 1   # 4096 problems, d = 20, n = 40
    python benchmarks/solvers.py --quick --alternatives   # also formulations icsim does not ship
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import _common as C
import numpy as np
import torch

import icsim
from icsim.algorithms.logistic import logistic_loss
from icsim.algorithms.sparse import lasso_objective
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
    objective: Callable | None = None  # (X, y, w) -> [B]: the objective both minimise


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
            "icsim: Cholesky + refinement, pinv where κ is too large (minimum-norm)",
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
            lambda X, y, w: logistic_loss(X, y, w, MU),
        ),
        Case(
            "LASSO",
            "sparse_recovery",
            {"sparsity": 3, "noise_std": 0.1},
            lambda p: icsim.algorithms.get("lasso", lam=LAM).init(p),
            lambda n: SkLasso(alpha=LAM, fit_intercept=False, tol=1e-10, max_iter=100_000),
            f"Lasso(alpha={LAM}, fit_intercept=False, tol=1e-10)",
            "icsim: lasso (FISTA on the Gram matrix, per-problem KKT-certified support polish)",
            lambda X, y, w: lasso_objective(X, y, w, LAM),
        ),
    ]


# -- formulations icsim does not ship, timed for comparison -------------------------------------
def least_squares_qr(p: Problem) -> torch.Tensor:
    """Full-column-rank least squares by batched QR (LAPACK gels); valid when n >= d."""
    return torch.linalg.lstsq(p.X, p.y.unsqueeze(-1), driver="gels").solution.squeeze(-1)


def least_squares_pinv(p: Problem) -> torch.Tensor:
    """Minimum-norm least squares by batched SVD (torch.linalg.pinv), icsim's previous path."""
    return (torch.linalg.pinv(p.X) @ p.y.unsqueeze(-1)).squeeze(-1)


ALTERNATIVES = {"least squares": [least_squares_qr, least_squares_pinv]}


def compare(w: np.ndarray, ref: np.ndarray) -> dict:
    diff = np.abs(w - ref)
    rel = np.linalg.norm(w - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)
    return {"max_abs_diff": float(diff.max()), "max_rel_diff": float(rel.max())}


def measure(case: Case, args, device, reps: int, logistic_steps: dict):
    """Time one solver family both ways on the same float64 problems, alternating repetitions;
    compare the answers."""
    from threadpoolctl import threadpool_limits

    B, d, n = args.problems, args.dim, args.points
    g = torch.Generator(device=device).manual_seed(0)
    task = icsim.tasks.get(case.task, dim=d, **case.task_params)
    batch = task.sample(B, n, generator=g, device=device, dtype=torch.float64)
    problem = Problem(batch.xs, batch.ys, batch.xs[:, :1])  # every point is context
    # scikit-learn fits one problem at a time, so its per-problem cost is measured on the first
    # `--sklearn-problems` (all by default) and scaled to B; icsim always solves all B at once
    m = min(args.sklearn_problems or B, B)
    X, y = batch.xs[:m].cpu().numpy(), batch.ys[:m].cpu().numpy()
    if case.name.startswith("logistic"):
        alg = icsim.algorithms.get("logistic_newton", mu=MU)
        logistic_steps["steps"] = newton_steps_needed(alg, problem)
        case.note += f" = {logistic_steps['steps']}"
    print(f"[{case.name}] {B} problems, d={d}, n={n} ...", flush=True)
    w = case.icsim(problem)  # warm-up
    alts = ALTERNATIVES.get(case.name, []) if args.alternatives else []
    coefs: list = []

    def sklearn_loop():
        coefs[:] = [np.ravel(case.sklearn(n).fit(X[i], y[i]).coef_) for i in range(m)]

    icsim_s, sk_s, alt_s = [], [], {alt.__name__: [] for alt in alts}
    with threadpool_limits(args.threads):
        for _ in range(reps):  # alternated, so that load from other jobs hits both alike
            icsim_s.append(C.timed(lambda: case.icsim(problem), device))
            sk_s.append(C.timed(sklearn_loop, torch.device("cpu")) * B / m)
            for alt in alts:
                alt_s[alt.__name__].append(C.timed(lambda alt=alt: alt(problem), device))
    coefs = np.stack(coefs)
    acc = compare(w[:m].cpu().numpy(), coefs)
    if case.objective is not None:  # > 0: icsim's objective above scikit-learn's
        ref = torch.as_tensor(coefs, device=device)
        Xm, ym = problem.X[:m], problem.y[:m]
        gap = case.objective(Xm, ym, w[:m]) - case.objective(Xm, ym, ref)
        acc["max_objective_gap"] = float(gap.max())
    speed = statistics.median(sk_s) / statistics.median(icsim_s)
    per_rep = [s / i for s, i in zip(sk_s, icsim_s, strict=True)]
    entry = {
        "icsim": case.note or case.name,
        "sklearn": case.sklearn_name,
        "icsim_seconds": C.stats(icsim_s),
        "sklearn_seconds": C.stats(sk_s),
        "sklearn_problems_timed": m,
        "speedup_ratio_of_medians": speed,
        "speedup_per_rep": per_rep,
        "accuracy_vs_sklearn": acc,
    }
    gap_txt = f"{acc['max_objective_gap']:.1e}" if "max_objective_gap" in acc else ""
    rows = [
        [
            case.name,
            C.mmm(entry["icsim_seconds"], 1e3),
            C.mmm(entry["sklearn_seconds"], 1e3),
            f"{speed:.1f}x ({min(per_rep):.1f}-{max(per_rep):.1f})",
            f"{acc['max_abs_diff']:.1e}",
            gap_txt,
        ]
    ]
    entry["alternatives"] = {}
    for alt in alts:
        secs = alt_s[alt.__name__]
        acc_a = compare(alt(problem)[:m].cpu().numpy(), coefs)
        speed_a = statistics.median(sk_s) / statistics.median(secs)
        entry["alternatives"][alt.__name__] = {
            "what": alt.__doc__.split("\n")[0],
            "seconds": C.stats(secs),
            "speedup_ratio_of_medians": speed_a,
            "accuracy_vs_sklearn": acc_a,
        }
        rows.append(
            [
                f"  alt: {alt.__name__}",
                C.mmm(C.stats(secs), 1e3),
                "",
                f"{speed_a:.1f}x",
                f"{acc_a['max_abs_diff']:.1e}",
                "",
            ]
        )
    return entry, rows


def main():
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--problems", type=int, default=4096)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--reps", type=int, default=None, help="alternated reps (default 5; 7 full)")
    p.add_argument(
        "--sklearn-problems",
        type=int,
        default=None,
        help="time the scikit-learn loop on this many problems and scale to --problems "
        "(its cost per problem is constant; default: all)",
    )
    p.add_argument("--only", nargs="+", default=None, help="solver names to run")
    p.add_argument("--alternatives", action="store_true", help="also time faster formulations")
    args = p.parse_args()
    device = C.setup(args)
    import sklearn

    info = C.machine(device)
    info["sklearn"] = sklearn.__version__
    reps = args.reps or (5 if args.quick else 7)
    logistic_steps: dict = {}
    results, rows = {}, []
    for case in cases(logistic_steps):
        if args.only and case.name not in args.only:
            continue
        results[case.name], case_rows = measure(case, args, device, reps, logistic_steps)
        rows += case_rows
    head = ["solver", "icsim ms", "sklearn loop ms", "speed-up (per rep)", "max |Δw|", "obj. gap"]
    print(C.table(head, rows))
    payload = {
        "machine": info,
        "problems": args.problems,
        "dim": args.dim,
        "points": args.points,
        "dtype": "float64",
        "reps": reps,
        "results": results,
    }
    C.write("solvers", args, payload)
    print(C.contention_note(info))


if __name__ == "__main__":
    main()
