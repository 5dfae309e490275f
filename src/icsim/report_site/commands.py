"""`icsim atlas RUN_DIR` and `icsim report DIR... --out SITE`: their flags (cli.py builds the
parser from `specs`) and what they do (`run`)."""

from __future__ import annotations

import json
import sys
from dataclasses import field
from pathlib import Path
from typing import Annotated

from icsim.errors import InputError


def specs(command: str, arg, flag) -> list:
    """The (name, type, default) fields of `command`'s dataclass; `arg`/`flag` are cli.py's."""
    import tyro

    if command == "atlas":
        return [
            (
                "run_dir",
                Annotated[
                    str,
                    tyro.conf.Positional,
                    arg(
                        "a run directory of icsim train, a reproduction directory holding trained "
                        "runs, or a construction NAME[:key=value,...] (e.g. gd:steps=6)",
                        metavar="RUN_DIR",
                    ),
                ],
            ),
            ("out", Annotated[str | None, arg("output folder (default RUN_DIR/atlas, ./atlas)")],
             field(default=None)),
            ("eval_prompts", Annotated[int, arg("prompts the measures average over")],
             field(default=320)),
            ("probe_prompts", Annotated[int, arg("prompts the per-layer read-outs are fit on")],
             field(default=4096)),
            ("weight_prompts", Annotated[int, arg("prompts for induced weights (0: skip)")],
             field(default=64)),
            ("max_step", Annotated[int | None, arg("cut every algorithm's step grid there")],
             field(default=None)),
            ("seed", Annotated[int, arg("seed of the prompts")], field(default=0)),
            ("device", Annotated[str, arg("cpu, cuda or cuda:N")], field(default="cpu")),
            ("overwrite", flag("replace an earlier atlas in --out"), field(default=False)),
        ]  # fmt: skip
    return [
        (
            "dirs",
            Annotated[
                tuple[str, ...],
                tyro.conf.Positional,
                arg(
                    "reproduction, run or atlas directories (icsim reproduce/train/atlas)",
                    metavar="DIR",
                ),
            ],
        ),
        ("out", Annotated[str, arg("the site's folder (index.html inside)")],
         field(default="site")),
        ("overwrite", flag("replace an earlier site in --out"), field(default=False)),
        ("check", flag("load every page in headless Chromium: no console error, every image "
                       "decodes, every link resolves; screenshots in SITE/_check (exit 1 if "
                       "a page fails)"), field(default=False)),
    ]  # fmt: skip


def run(c) -> int:
    return {"atlas": atlas_command, "report": report_command}[type(c).__name__](c)


def _fresh(out: Path, overwrite: bool, marker: str) -> Path:
    """`out` ready to write: refused if it holds files not made by this command (no `marker`)
    or an earlier result without --overwrite."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder.")
    if out.is_dir() and any(out.iterdir()):
        if not (out / marker).exists():
            raise InputError(
                f"--out {out} holds other files; give an empty or new folder (nothing is deleted)."
            )
        if not overwrite:
            raise InputError(f"{out} holds an earlier result; pass --overwrite to replace it.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def atlas_command(c) -> int:
    from icsim import _validate as V
    from icsim.analysis.atlas import atlas
    from icsim.report_site.sources import sources
    from icsim.training.trainer import resolve_device

    V.positive_int("--eval-prompts", c.eval_prompts)
    V.positive_int("--probe-prompts", c.probe_prompts)
    V.nonnegative_int("--weight-prompts", c.weight_prompts)
    if c.max_step is not None:
        V.nonnegative_int("--max-step", c.max_step)
    V.seed("--seed", c.seed)
    device = str(resolve_device(V.device(c.device)))
    models = sources(c.run_dir, device)
    default = Path(c.run_dir) / "atlas" if Path(c.run_dir).is_dir() else Path("atlas")
    out = _fresh(Path(c.out) if c.out else default, c.overwrite, "atlas.json")
    for src in models:
        dest = out if len(models) == 1 else out / src.label
        print(f"atlas of {src.label}: {src.task.name}, {src.n_points} points", file=sys.stderr)
        a = atlas(
            src.model, src.fmt, src.task, n_points=src.n_points, eval_prompts=c.eval_prompts,
            probe_prompts=c.probe_prompts, weight_prompts=c.weight_prompts, seed=c.seed,
            device=device, max_step=c.max_step, extra=src.extra, sample=src.sample,
        )  # fmt: skip
        paths = a.write(dest, src.label)
        for v in a.verdicts:
            print(v)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if len(models) > 1:
        (out / "atlas.json").write_text(json.dumps({"atlases": [s.label for s in models]}))
    return 0


def report_command(c) -> int:
    from icsim.report_site.site import build_site, discover

    if not c.dirs:
        raise InputError(
            "icsim report needs at least one directory: icsim report DIR... --out SITE."
        )
    discover([Path(d) for d in c.dirs])  # every directory checked before anything is written
    chromium = _chromium() if c.check else None
    out = _fresh(Path(c.out), c.overwrite, "index.html")
    pages = build_site([Path(d) for d in c.dirs], out)
    for p in pages:
        print(p)
    print(f"open {out / 'index.html'} in a browser (no server needed)")
    return 0 if chromium is None else check_site(out, chromium)


def _chromium() -> str:
    from icsim.report_site.browser import find_chromium

    path = find_chromium()
    if path is None:
        raise InputError(
            "--check needs a headless Chromium and none was found (chromium, chromium-browser, "
            "google-chrome or Playwright's): install one (apt-get install -y chromium) or drop "
            "--check."
        )
    return path


def check_site(site: Path, chromium: str) -> int:
    """Load every page of `site` in Chromium; print one line per page and what is wrong with
    it; screenshots in site/_check. 0 when every page is clean, 1 otherwise."""
    from icsim.report_site.browser import load_page, problems

    shots, failed, pages = site / "_check", 0, sorted(site.glob("*.html"))
    shots.mkdir(exist_ok=True)
    for html in pages:
        page = load_page(chromium, html.resolve().as_uri())
        (shots / html.with_suffix(".png").name).write_bytes(page.screenshot)
        bad = problems(page)
        failed += bool(bad)
        print(f"{'FAIL' if bad else 'ok  '} {html.name}: {len(page.images)} images, "
              f"{len(page.links)} links" + "".join(f"\n     {b}" for b in bad))  # fmt: skip
    print(f"checked {len(pages)} pages in Chromium, {failed} failed; screenshots in {shots}")
    return 1 if failed else 0
