"""`icsim report`: the site built from tiny synthetic directories has every page, every link and
image resolves to a file in the site, marks follow the recorded verdicts, text is escaped."""

import re
from html.parser import HTMLParser
from pathlib import Path

from icsim.cli import main
from icsim.report_site.markdown import to_html, verdict_marks
from icsim.report_site.site import build_site


class Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.refs += [a[k] for k in ("href", "src") if k in a]


def refs(page: Path) -> list[str]:
    p = Refs()
    p.feed(page.read_text())
    return p.refs


def test_the_site_has_every_page_and_every_reference_resolves(site_dirs, tmp_path):
    pages = build_site(site_dirs, tmp_path / "site")
    names = sorted(p.name for p in pages)
    assert names == sorted([
        "index.html", "reproduction-garg-seed0.html", "reproduction-garg-seed1.html",
        "run-train-run.html", "atlas-atlas.html", "compare-garg2022-linear-regression.html",
    ])  # fmt: skip
    for page in pages:
        for ref in refs(page):
            assert not re.match(r"[a-z]+://", ref), f"{page.name} refers outside the site: {ref}"
            assert (page.parent / ref.split("#")[0]).is_file(), f"{page.name}: {ref} is missing"
    index = (tmp_path / "site" / "index.html").read_text()
    row0, row1 = (r.split("</tr>")[0] for r in index.split("<tr>")[2:4])
    assert "✓ pass" in row0 and "✗ differs" in row1
    assert "0.01" in row0 and "paper 0.02" in row0
    compare = (tmp_path / "site" / "compare-garg2022-linear-regression.html").read_text()
    assert compare.count("<img") == 2  # transformer and least_squares, each run overlaid
    atlas = (tmp_path / "site" / "atlas-atlas.html").read_text()
    assert "gradient_descent(step_size=0.1)" in atlas and "atlas.png" in atlas


def test_markdown_is_escaped_and_marks_are_read_from_the_report():
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    html = to_html(f"# T\n\nA <script>x</script> and `a<b` ![f](f.png)\n\n{table}")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<img src="f.png" alt="f">' in html and "<td>1</td>" in html
    assert verdict_marks("- ✅ yes\n- ❌ no\n- ⚪ Not measured") == [
        ("✅", "yes"), ("❌", "no"), ("⚪", "Not measured")
    ]  # fmt: skip


def test_bad_report_input_is_one_error_exit_2(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "s")]) == 2
    assert "at least one directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "holds no reproduction" in err and err.count("icsim: error") == 1
    assert not (tmp_path / "s").exists()  # nothing written before the input is checked


def test_a_pipe_inside_a_cell_does_not_split_it():
    # he2025-spectral's "mean |cos|" rows lost their numbers on the site before
    from icsim.analysis.report import markdown_table
    from icsim.report_site.markdown import table_rows

    text = markdown_table(["quantity", "ours"], [["ReLU transformer mean |cos| (d = 5)", 0.8842]])
    assert table_rows(text) == [
        ["quantity", "ours"],
        ["ReLU transformer mean |cos| (d = 5)", "0.8842"],
    ]
