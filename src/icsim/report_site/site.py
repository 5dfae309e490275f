"""`icsim report DIR... --out SITE`: a static HTML site (no server, no network) built only from
reproduction, run and atlas directories, with Jinja2 templates (package data)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from icsim.errors import InputError
from icsim.report_site import figures
from icsim.report_site.markdown import (
    section,
    table_rows,
    to_html,
    verdict_marks,
    without_sections,
)

#: report.md sections the reproduction page shows in its own way
SHOWN = ("Our numbers", "The paper's findings", "Figures")

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Entry:
    """One directory of the site: a reproduction, a training run, or an atlas."""

    kind: str  # "reproduction" | "run" | "atlas"
    path: Path
    slug: str = ""
    title: str = ""
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    report: str = ""
    figures: list = field(default_factory=list)  # site-relative image paths
    marks: list = field(default_factory=list)  # (mark, sentence)
    atlases: list = field(default_factory=list)  # Entries of kind "atlas" found inside
    data: dict = field(default_factory=dict)  # atlas.json for an atlas

    @property
    def page(self) -> str:
        return f"{self.kind}-{self.slug}.html"

    @property
    def experiment(self) -> str:
        return self.metrics.get("experiment", "")

    @property
    def status(self) -> str:
        """'pass' when every recorded finding held, 'differs' when one did not, '' if none."""
        held = [m for m, _ in self.marks if m in "✅❌"]
        return "" if not held else "pass" if all(m == "✅" for m in held) else "differs"

    def headline(self, limit: int = 4) -> list[dict]:
        """Our numbers beside the paper's: scalars the paper gives a number for, else the first
        rows of the report's comparison table."""
        ours, paper = self.metrics.get("scalars", {}), self.metrics.get("paper", {})
        keys = [k for k in paper if k in ours and isinstance(ours[k], (int, float))]
        if keys:
            return [{"name": k, "ours": ours[k], "paper": paper[k]} for k in keys[:limit]]
        rows = [r for r in table_rows(section(self.report, "Our numbers")) if len(r) >= 3]
        return [{"name": r[0], "ours": r[1], "paper": r[2]} for r in rows[1 : limit + 1]]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {path}: {e}; is it an icsim output?") from None
    return data if isinstance(data, dict) else {}


def _atlas_dirs(root: Path) -> list[Path]:
    found = [root / "atlas.json"] + [
        p for pat in ("*/atlas.json", "*/*/atlas.json", "*/*/*/atlas.json") for p in root.glob(pat)
    ]
    return sorted(
        p.parent for p in found if p.is_file() and "verdicts" in _read_json(p)
    )  # an index of several atlases has no verdicts of its own


def discover(dirs: list[Path]) -> list[Entry]:
    """Every reproduction, run and atlas the given directories hold; an InputError naming a
    directory that holds none."""
    from icsim.training.checkpoint import list_checkpoints

    if not dirs:
        raise InputError("no directories given: icsim report DIR... --out SITE.")
    entries = []
    for d in dirs:
        if not d.is_dir():
            raise InputError(f"{d} is not a directory; give reproduction or run directories.")
        metrics = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {}
        atlases = [Entry("atlas", a, data=_read_json(a / "atlas.json")) for a in _atlas_dirs(d)]
        if metrics.get("experiment"):
            e = Entry("reproduction", d, metrics=metrics)
            e.config = _read_json(d / "config.json") if (d / "config.json").is_file() else {}
            e.report = (d / "report.md").read_text() if (d / "report.md").is_file() else ""
            e.title = e.report.splitlines()[0].lstrip("# ") if e.report else e.experiment
        elif list_checkpoints(d):
            e = Entry("run", d, title=f"training run {d.name}")
            e.config = _read_json(d / "config.json") if (d / "config.json").is_file() else {}
            if (d / "eval" / "metrics.json").is_file():
                e.metrics = _read_json(d / "eval" / "metrics.json")
        elif atlases:
            entries += atlases
            continue
        else:
            raise InputError(
                f"{d} holds no reproduction (metrics.json of icsim reproduce), run (checkpoints/ "
                "of icsim train) or atlas (atlas.json of icsim atlas); check the path."
            )
        e.marks = verdict_marks(e.report)
        e.atlases = atlases
        entries += [e, *atlases]
    used: dict[str, int] = {}
    for e in entries:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", e.path.resolve().name or "root").strip("-")
        used[base] = used.get(base, 0) + 1
        e.slug = base if used[base] == 1 else f"{base}-{used[base]}"
        if e.kind == "atlas":
            e.title = f"algorithm atlas: {e.path.name}"
    return entries


def _copy_figures(e: Entry, out: Path) -> None:
    """PNG files of the entry into SITE/files/SLUG/ (the site is self-contained)."""
    dest = out / "files" / e.slug
    pngs = sorted(e.path.glob("*.png"))
    if pngs:
        dest.mkdir(parents=True, exist_ok=True)
    for p in pngs:
        shutil.copyfile(p, dest / p.name)
        e.figures.append(f"files/{e.slug}/{p.name}")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    env.filters["pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    return env


def build_site(dirs: list[Path], out: Path) -> list[Path]:
    """Write the site into `out`; returns the pages written (index first)."""
    entries = discover(dirs)
    env = _environment()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATES / "style.css", out / "style.css")
    for e in entries:
        _copy_figures(e, out)
        if e.kind == "run":
            e.figures += figures.run_figures(e.path, out / "files" / e.slug, f"files/{e.slug}")
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        if e.kind == "reproduction":
            groups.setdefault(e.experiment, []).append(e)
    comparisons = {k: v for k, v in groups.items() if len(v) > 1}
    pages = [out / "index.html"]
    common = {"entries": entries, "comparisons": comparisons}
    _write(env, "index.html", pages[0], common, page_title="icsim reports")
    for e in entries:
        url = lambda u, e=e: f"files/{e.slug}/{u}" if (e.path / u).is_file() else u  # noqa: E731
        body = to_html(without_sections(e.report, SHOWN), url, skip_title=True)
        table = to_html(section(e.report, "Our numbers"), url) if e.report else ""
        ctx = {"e": e, "notes": body, "table": table, **common}
        if e.kind == "atlas":
            md = (e.path / "atlas.md").read_text() if (e.path / "atlas.md").is_file() else ""
            ctx["notes"] = to_html(section(md, "Best similarity of errors"), url)
        pages.append(out / e.page)
        _write(env, f"{e.kind}.html", pages[-1], ctx, page_title=e.title)
    for name, group in comparisons.items():
        dest = out / "files" / f"compare-{name}"
        figs = figures.overlay(group, dest, f"files/compare-{name}")
        pages.append(out / f"compare-{name}.html")
        ctx = {"name": name, "group": group, "figures": figs, **common}
        ctx["rows"] = figures.scalar_rows(group)
        _write(env, "compare.html", pages[-1], ctx, page_title=f"comparison: {name}")
    return pages


def _write(env, template: str, path: Path, ctx: dict, page_title: str) -> None:
    path.write_text(env.get_template(template).render(page_title=page_title, **ctx))
