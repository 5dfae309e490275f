"""What a reproduction reports, as data: curves, comparisons with the paper, and findings whose
verdicts are computed from the measured numbers (never written by hand).

A `Curve` is what every experiment measures and every plot draws; its JSON form is the
metrics.json shape (x, y, y_low, y_high, labels). A `Comparison` is one row of a report's
table (our scalar beside the paper's value). A `Finding` states a paper's claim and a criterion
on our scalars; `Finding.judge(scalars)` returns the sentence the report prints, chosen by the
criterion: agreement can only be printed for numbers that meet it.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from icsim.analysis.metrics import mean_and_interval, mean_and_interval_by_column


@dataclass(frozen=True)
class Curve:
    """y against x, optionally with a band [y_low, y_high] (e.g. a bootstrap 95% interval)."""

    x: Sequence[float]
    y: Sequence[float]
    x_label: str = ""
    y_label: str = ""
    y_low: Sequence[float] | None = None
    y_high: Sequence[float] | None = None

    @classmethod
    def of_prompts(
        cls, values: torch.Tensor, x, x_label="", y_label="", generator=None, per_column=False
    ) -> Curve:
        """Mean over prompts of per-prompt values [P, len(x)] with a bootstrap 95% band (one
        resample of every column at once, or `per_column`: one per column, in order)."""
        band = mean_and_interval_by_column if per_column else mean_and_interval
        mean, low, high = band(values, generator=generator)
        return cls(list(x), mean.tolist(), x_label, y_label, low.tolist(), high.tolist())

    @classmethod
    def of_training(cls, rows, y_label: str, scale: float = 1.0) -> Curve:
        """The training loss (× `scale`) against the step, from a run's log rows (`Trainer.history`
        or metrics.jsonl); rows without a float loss are skipped."""
        rows = [r for r in rows if isinstance(r.get("loss"), float)]
        return cls(
            [r["step"] for r in rows], [scale * r["loss"] for r in rows], "training step", y_label
        )

    def to_json(self) -> dict:
        out = {"x": list(self.x), "y": list(self.y), "x_label": self.x_label}
        out["y_label"] = self.y_label
        if self.y_low is not None:
            out["y_low"], out["y_high"] = list(self.y_low), list(self.y_high)
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> Curve:
        return cls(
            d["x"], d["y"], d.get("x_label", ""), d.get("y_label", ""),
            d.get("y_low"), d.get("y_high"),
        )  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """One row of "our numbers beside the paper's": `ours` names a scalar of metrics.json."""

    quantity: str
    ours: str
    paper: float | str
    note: str = ""
    lower_bound_if: str = ""  # a scalar that, when true, makes `ours` a lower bound ("≥ v")

    def row(self, scalars: Mapping, curves: Mapping | None = None) -> tuple:
        """(quantity, ours, paper, note); `ours` may also name a curve (its y values)."""
        if self.ours in scalars:
            ours = scalars[self.ours]
        elif curves is not None and self.ours in curves:
            ours = list(curves[self.ours]["y"])
        else:
            ours = "not measured"
        if self.lower_bound_if and scalars.get(self.lower_bound_if):
            ours = f"≥ {fmt(ours)}"
        return self.quantity, ours, self.paper, self.note


@dataclass(frozen=True)
class Verdict:
    finding: str
    holds: bool
    sentence: str


@dataclass(frozen=True)
class Finding:
    """A paper's claim and the stated criterion on our scalars that decides whether we see it.

    `holds(scalars)` is the criterion, `criterion` says it in words, `measured(scalars)` gives
    the numbers it was decided on. A scalar the criterion needs but that is missing or not
    finite makes the verdict "not measured", never "agrees"."""

    name: str
    claim: str
    criterion: str
    holds: Callable[[Mapping], bool]
    measured: Callable[[Mapping], str]
    of_paper: bool = True  # False: a check of our own code (e.g. a construction), not a claim
    needs: tuple[str, ...] = ()  # scalars that must be present and finite to judge at all

    @classmethod
    def below(cls, name, claim, criterion, ours, than, margin=0.0, unit="", measured=None, **kw):
        """Holds when scalar `ours` < scalar `than` + `margin` ("ours below theirs")."""
        u = f" {unit}" if unit else ""
        text = measured or (lambda s: f"{s[ours]:.1f}{u} against {s[than]:.1f}{u}")
        return cls(name, claim, criterion, lambda s: s[ours] < s[than] + margin, text, **kw)

    @classmethod
    def flag(cls, name, claim, criterion, key, measured=None, yes="yes", no="no", **kw):
        """Holds when the 0/1 scalar `key` (a check computed with the numbers) is 1; `measured`
        says `yes` or `no` by default."""
        text = measured or (lambda s: yes if s[key] else no)
        return cls(name, claim, criterion, lambda s: s[key] == 1.0, text, **kw)

    def judge(self, scalars: Mapping) -> Verdict:
        missing = [k for k in self.needs if not finite(scalars.get(k))]
        if missing:
            return Verdict(
                self.name,
                False,
                f"Not measured: {self.claim} ({', '.join(missing)} missing or not finite).",
            )
        try:
            ok = bool(self.holds(scalars))
            detail = self.measured(scalars)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
            text = f"Not measured: {self.claim} (needs {self.criterion})."
            return Verdict(self.name, False, text)
        yes, no = (
            ("As the paper finds,", "Unlike the paper, we do not see that")
            if self.of_paper
            else ("Check passed:", "Check FAILED: we do not see that")
        )
        if ok:
            text = f"{yes} {self.claim}: {detail} (criterion: {self.criterion})."
        else:
            text = f"{no} {self.claim}: {detail} (criterion not met: {self.criterion})."
        return Verdict(self.name, ok, text)


def finite(*values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def judge_all(findings: Sequence[Finding], scalars: Mapping) -> dict[str, Verdict]:
    return {f.name: f.judge(scalars) for f in findings}


def findings_markdown(verdicts: Sequence[Verdict]) -> str:
    """A report's "Findings" list: one line per verdict, marked by whether its criterion held
    (✅ held, ❌ did not, ⚪ could not be judged)."""

    def mark(v: Verdict) -> str:
        return "✅" if v.holds else "⚪" if v.sentence.startswith("Not measured") else "❌"

    return "\n".join(f"- {mark(v)} {v.sentence}" for v in verdicts)


def markdown_table(heads: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A markdown table: the header, then one line per row (cells are formatted by the caller;
    a "|" inside a cell, as in |cos|, is escaped so it does not split the cell)."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(heads), "|" + "---|" * len(heads), *map(line, rows)])


def template_beside(module_file: str | Path) -> str:
    """The report template beside an experiment module (`garg2022.py` -> `garg2022.md`)."""
    return Path(module_file).with_suffix(".md").read_text()


def fill_beside(module_file: str | Path, scalars: Mapping, verdicts: Mapping[str, Verdict]) -> str:
    """`fill` the report template beside an experiment module."""
    return fill(template_beside(module_file), scalars, verdicts)


def fill(template: str, scalars: Mapping, verdicts: Mapping[str, Verdict]) -> str:
    """Fill a report template: `$name` is a scalar (formatted), `$verdict_name` a verdict's
    sentence, `$findings` every verdict as a marked list (unless `scalars` gives it). An unknown
    placeholder is an error, so a template cannot silently lose a verdict."""
    values = {"findings": findings_markdown(list(verdicts.values()))}
    values |= {k: fmt(v) for k, v in scalars.items()}
    values.update({f"verdict_{k}": v.sentence for k, v in verdicts.items()})
    return string.Template(template).substitute(values)
