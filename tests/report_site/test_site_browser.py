"""The report site in a real headless Chromium (DevTools protocol over a pipe): the index and a
reproduction page load with no console error, exception or failed resource, every image decodes,
every link points at a file of the site, and a screenshot is written. Skips only when no
Chromium is installed. ICSIM_SITE_SCREENSHOTS=DIR keeps the screenshots."""

import os
import shutil
from pathlib import Path

from icsim.report_site.browser import problems
from icsim.report_site.site import build_site


def test_index_and_a_reproduction_page_load_cleanly(site_dirs, tmp_path, chromium, browse):
    site = tmp_path / "site"
    build_site(site_dirs, site)
    for name in ("index.html", "reproduction-garg-seed1.html"):
        page = browse(chromium, (site / name).as_uri())
        # no console error, broken image or link to no file (`icsim report --check`'s rule)
        assert problems(page) == [], problems(page)
        assert page.images and page.links
        shot = tmp_path / name.replace(".html", ".png")
        shot.write_bytes(page.screenshot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if keep := os.environ.get("ICSIM_SITE_SCREENSHOTS"):
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, Path(keep) / shot.name)


def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path, chromium, browse):
    bad = tmp_path / "bad.html"
    bad.write_text('<img src="missing.png"><script>console.error("boom")</script>')
    page = browse(chromium, bad.as_uri())
    assert page.broken_images and any("boom" in e for e in page.errors)
    assert any("missing.png" in e for e in page.errors)  # the failed load itself


def test_report_check_loads_every_page_and_fails_on_a_broken_one(site_dirs, tmp_path, chromium,
                                                                  capsys):  # fmt: skip
    from icsim.cli import main
    from icsim.report_site.commands import check_site

    site = tmp_path / "checked"
    assert main(["report", *map(str, site_dirs), "--out", str(site), "--check"]) == 0
    out = capsys.readouterr().out
    pages = sorted(p.name for p in site.glob("*.html"))
    assert [ln.split()[1].rstrip(":") for ln in out.splitlines() if ln.startswith("ok")] == pages
    assert sorted(p.stem for p in (site / "_check").glob("*.png")) == [p[:-5] for p in pages]
    (site / "broken.html").write_text('<a href="nowhere.html">x</a><img src="gone.png">')
    assert check_site(site, chromium) == 1
    assert "FAIL broken.html" in capsys.readouterr().out
