"""The markdown subset icsim's report.md files use (headings, lists, tables, images, links,
`code`, **bold**, *italic*, $math$ left as text) to HTML, every text escaped. A dependency-free
converter: the site must build from the project's own environment."""

from __future__ import annotations

import re

from markupsafe import escape

_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), "image"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), "link"),
    (re.compile(r"`([^`]+)`"), "code"),
    (re.compile(r"\*\*([^*]+)\*\*"), "strong"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), "em"),
]


def inline(text: str, url=lambda u: u) -> str:
    """One line of markdown to HTML; `url` maps a relative image/link target (e.g. into the
    site's copy of the file)."""
    out, pos = [], 0
    while pos < len(text):
        hits = [
            (m.start(), i, m) for i, (rx, _) in enumerate(_INLINE) if (m := rx.search(text, pos))
        ]
        if not hits:
            out.append(str(escape(text[pos:])))
            break
        start, i, m = min(hits, key=lambda h: (h[0], h[1]))
        out.append(str(escape(text[pos:start])))
        kind = _INLINE[i][1]
        if kind == "image":
            out.append(f'<img src="{escape(url(m[2]))}" alt="{escape(m[1])}">')
        elif kind == "link":
            out.append(f'<a href="{escape(url(m[2]))}">{inline(m[1], url)}</a>')
        elif kind == "code":
            out.append(f"<code>{escape(m[1])}</code>")
        else:
            out.append(f"<{kind}>{inline(m[1], url)}</{kind}>")
        pos = m.end()
    return "".join(out)


def _row(line: str) -> list[str]:
    """A table line's cells; "\\|" is a "|" inside a cell (GitHub's markdown)."""
    body = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row in `text` (header included, the --- line left out)."""
    lines = [ln for ln in text.splitlines() if ln.lstrip().startswith("|")]
    return [_row(ln) for ln in lines if not set(ln.strip()) <= set("|-: ")]


def to_html(text: str, url=lambda u: u, skip_title: bool = False) -> str:
    """A markdown document to HTML (`skip_title`: drop the first `# ` heading, which the page
    shows itself)."""
    lines, html, i = text.splitlines(), [], 0
    para: list[str] = []

    def flush():
        if para:
            html.append(f"<p>{inline(' '.join(para), url)}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            flush()
            level = len(m[1])
            if not (skip_title and level == 1):
                html.append(f"<h{level + 1}>{inline(m[2], url)}</h{level + 1}>")
            skip_title = False
        elif line.lstrip().startswith(("- ", "* ")):
            flush()
            items = []
            while i < len(lines) and lines[i].lstrip().startswith(("- ", "* ")):
                items.append(f"<li>{inline(lines[i].lstrip()[2:], url)}</li>")
                i += 1
            html.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and "---" in lines[i + 1]:
            flush()
            head = "".join(f"<th>{inline(c, url)}</th>" for c in _row(line))
            body, i = [], i + 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                body.append("".join(f"<td>{inline(c, url)}</td>" for c in _row(lines[i])))
                i += 1
            rows = "".join(f"<tr>{r}</tr>" for r in body)
            html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            continue
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(html)


def section(text: str, title_start: str) -> str:
    """The body of the `## ` section whose title starts with `title_start` ('' if none)."""
    m = re.search(rf"^##\s+{re.escape(title_start)}[^\n]*\n(.*?)(?=^##\s|\Z)", text, re.M | re.S)
    return m[1].strip() if m else ""


def without_sections(text: str, title_starts: tuple[str, ...]) -> str:
    """`text` less its `## ` sections whose titles start with one of `title_starts`."""
    for t in title_starts:
        text = re.sub(rf"^##\s+{re.escape(t)}[^\n]*\n.*?(?=^##\s|\Z)", "", text, flags=re.M | re.S)
    return text


def verdict_marks(text: str) -> list[tuple[str, str]]:
    """(mark, sentence) of every '- ✅/❌/⚪ ...' line (analysis.report.findings_markdown)."""
    return re.findall(r"^- (✅|❌|⚪) (.*)$", text, re.M)
