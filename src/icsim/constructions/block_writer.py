"""Writing a construction's weights by hand: `BlockWriter` fills one transformer block's heads
and MLP units from linear "forms" of a token (shared by the logistic-Newton and power-method
constructions)."""

from __future__ import annotations

import numpy as np

ONE = {None: 1.0}  # the constant form


def forms(coords, scale: float = 1.0) -> list[dict]:
    """One form {i: scale} per coordinate i of `coords` (an iterable of coordinates, or a slice
    of the token)."""
    if isinstance(coords, slice):
        coords = range(coords.start, coords.stop)
    return [{i: scale} for i in coords]


# --- writing weights ----------------------------------------------------------------------------
# A "form" is a linear function of one token, {coordinate: coefficient}; key None = a constant.


class BlockWriter:
    """Writes heads and MLP units into one block (through NumPy views of its float64 weights),
    handing out head and unit indices in order."""

    def __init__(self, block):
        cfg = block.attn.cfg
        H, hd, E = cfg.n_head, cfg.d_head, cfg.n_embd
        attn = block.attn
        self.q, self.k, self.v = (
            lin.weight.data.numpy().reshape(H, hd, E) for lin in (attn.q, attn.k, attn.v)
        )
        self.qb, self.kb, self.vb = (
            lin.bias.data.numpy().reshape(H, hd) for lin in (attn.q, attn.k, attn.v)
        )
        self.o = attn.proj.weight.data.numpy().reshape(E, H, hd)
        self.ob = attn.proj.bias.data.numpy()
        self.fc, self.fcb = block.mlp.fc.weight.data.numpy(), block.mlp.fc.bias.data.numpy()
        self.pr, self.prb = block.mlp.proj.weight.data.numpy(), block.mlp.proj.bias.data.numpy()
        self.head = self.unit = 0

    @staticmethod
    def _form(W, b, row, form: dict) -> None:
        for key, c in form.items():
            if key is None:
                b[row] += c
            else:
                W[row, key] += c

    def add_head(self, q: list, k: list, v: list, out: list) -> None:
        """score_ij = Σ_m q_m(h_i) k_m(h_j); h_i[slot] += c · mean_j score_ij v_m(h_j) for every
        {slot: c} in out[m]."""
        h = self.head
        for m, (fq, fk) in enumerate(zip(q, k, strict=True)):
            self._form(self.q[h], self.qb[h], m, fq)
            self._form(self.k[h], self.kb[h], m, fk)
        for m, (fv, fo) in enumerate(zip(v, out, strict=True)):
            self._form(self.v[h], self.vb[h], m, fv)
            for slot, c in fo.items():
                self.o[slot, h, m] += c
        self.head += 1

    def bias(self, slot: int, value: float) -> None:
        """A constant the attention adds (its output projection's bias)."""
        self.ob[slot] += value

    def add_interpolant(self, x: dict, knots, values, out: int, scale: float = 1.0) -> None:
        """h[out] += scale · p(x(h)), p the piecewise-linear interpolant of (knots, values), flat
        outside them: p(x) = f₀ + Σ_j (slope_j − slope_{j−1}) ReLU(x − t_j), one unit per knot."""
        t, f = np.asarray(knots, dtype=np.float64), np.asarray(values, dtype=np.float64)
        slopes = np.concatenate([[0.0], np.diff(f) / np.diff(t), [0.0]])
        units = slice(self.unit, self.unit + len(t))
        for key, c in x.items():
            if key is not None:
                self.fc[units, key] += c
        self.fcb[units] += x.get(None, 0.0) - t
        self.pr[out, units] += scale * np.diff(slopes)
        self.prb[out] += scale * f[0]
        self.unit += len(t)

    def add_clear(self, slots) -> None:
        """h[s] ← 0 for every slot s: h_s − (ReLU(h_s) − ReLU(−h_s)), exact."""
        for s in slots:
            for sign in (1.0, -1.0):
                self.fc[self.unit, s] = sign
                self.pr[s, self.unit] = -sign
                self.unit += 1
