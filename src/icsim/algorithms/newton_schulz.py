"""Newton–Schulz iterations for a matrix inverse, batched over leading dimensions.

Plain functions (no registry entry): iterative Newton, the hand-built constructions and Newton's
method for GLMs all call these.
"""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.errors import InputError


def _check(A: torch.Tensor, X: torch.Tensor, order: int) -> None:
    V.positive_int("order", order)
    if order < 2:
        raise InputError(f"order must be >= 2 (order 1 leaves X unchanged), got {order!r}.")
    if A.ndim < 2 or X.ndim < 2 or A.shape[-1] != X.shape[-2] or X.shape[-1] != A.shape[-2]:
        raise InputError(
            f"A [..., n, m] and X [..., m, n] must have matching inner dimensions, got "
            f"A {tuple(A.shape)} and X {tuple(X.shape)}."
        )


def newton_schulz_step(A: torch.Tensor, X: torch.Tensor, order: int = 2) -> torch.Tensor:
    """One step X ← X Σ_{i<p} (I − AX)^i (Giannou et al. 2025, Lemma 4.1 for p = 2: X(2I − AX)).

    With E = I − AX the error obeys E ← E^p, so X → A⁻¹ when ‖I − AX₀‖ < 1. A [..., n, m],
    X [..., m, n]; leading dimensions broadcast. Order 2 is evaluated as 2X − (XA)X: the form
    X(I + (I − AX)) rounds I − AX to absolute precision, which caps X's relative accuracy near
    κ(A)·ε (1e-2 at κ = 2e8) where 2X − (XA)X keeps converging.
    """
    _check(A, X, order)
    if order == 2:
        return 2 * X - (X @ A) @ X
    n = A.shape[-2]
    eye = torch.eye(n, dtype=X.dtype, device=X.device)
    R = eye - A @ X
    # Horner: Σ_{i<p} R^i = I + R(I + R(... )) — p − 1 products.
    S = eye + R
    for _ in range(order - 2):
        S = eye + R @ S
    return X @ S


def newton_schulz(
    A: torch.Tensor, X0: torch.Tensor, steps: int, order: int = 2, *, stack: bool = True
) -> torch.Tensor | list[torch.Tensor]:
    """Iterates X_0..X_steps of `newton_schulz_step`: a tensor [steps+1, ..., m, n] (or a list).

    A safe start for a general invertible A is X₀ = Aᵀ/‖A‖₂² (or /‖AAᵀ‖_F, a cheaper bound):
    then I − AX₀ has eigenvalues in [0, 1).
    """
    V.nonnegative_int("steps", steps)
    _check(A, X0, order)
    iterates = [X0]
    for _ in range(steps):
        iterates.append(newton_schulz_step(A, iterates[-1], order))
    return torch.stack(iterates) if stack else iterates
