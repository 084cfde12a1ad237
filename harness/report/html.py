"""HTML building blocks of the report: escaped text, tables, figures and the page shell.

Every page is self-contained: its style sheet is inline and it links only to files of the
report itself (relative paths), so the site opens from the file system with no server and
loads nothing from outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.report.encode import html_text

STYLE = """
* { box-sizing: border-box; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0; color: #1d2329; background: #f6f7f9; }
header { background: #1d2b3a; color: #fff; padding: 8px 18px; }
header h1 { font-size: 17px; margin: 0 0 2px 0; }
header .meta { color: #c9d3dd; font-size: 12px; }
header a { color: #9fd0ff; margin-right: 12px; }
main { padding: 10px 18px 30px 18px; }
h2 { font-size: 15px; margin: 18px 0 6px 0; border-bottom: 1px solid #d5dae0; }
h3 { font-size: 13px; margin: 12px 0 4px 0; }
.first { display: grid; grid-template-columns: fit-content(470px) minmax(0, 1fr); gap: 12px;
         align-items: start; }
.card { background: #fff; border: 1px solid #d5dae0; border-radius: 4px; padding: 6px 10px; }
.card h2 { margin-top: 2px; }
table { border-collapse: collapse; margin: 2px 0 8px 0; background: #fff; }
th, td { padding: 2px 6px; border: 1px solid #e1e5ea; text-align: right; white-space: nowrap; }
th { background: #eef1f4; font-weight: 600; }
td.name, th.name { text-align: left; }
table.compact td, table.compact th { padding: 1px 5px; font-size: 12px; }
table.matrix td { padding: 1px 3px; line-height: 1.3; }
table.matrix td.heat { min-width: 40px; text-align: center; font-size: 11px; }
table.matrix th.family { writing-mode: vertical-rl; transform: rotate(180deg);
         font-weight: 500; font-size: 11px; height: 200px; vertical-align: bottom;
         text-align: left; padding: 3px 1px; }
table.matrix .groupstart { border-left: 3px solid #1d2b3a; }
table.matrix th.group { text-align: center; font-size: 11px; }
table.matrix tr.section td { text-align: left; background: #f6f7f9; font-weight: 600;
         white-space: normal; }
.stealthy { background: #fdebd0; }
.clean-label { background: #d5f5e3; }
.warping { background: #d6eaf8; }
.adaptive { background: #fadbd8; }
.faces { background: #e8daef; }
.legend span { display: inline-block; padding: 0 6px; margin-right: 4px; font-size: 11px;
         color: #000; }
.scroll { overflow-x: auto; max-width: 100%; }
table.text td { white-space: normal; max-width: 460px; text-align: left; }
.failed { color: #a93226; }
.note { color: #55606b; font-size: 12px; }
.warning { background: #fff4e0; border-left: 4px solid #d08a00; padding: 6px 10px; }
figure { display: inline-block; margin: 4px 10px 10px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #d5dae0; background: #fff; }
figcaption { font-size: 11px; color: #55606b; }
code { font-size: 12px; }
"""


def esc(value: object) -> str:
    """Text for HTML (``harness.report.encode.html_text``: every writer's one encoder)."""
    return html_text(value)


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    names: int = 1,
    css: str = "",
    raw: bool = False,
) -> str:
    """A table; the first ``names`` columns are left-aligned text. Cells are escaped
    unless ``raw`` (cells the caller built from escaped parts: links)."""
    head = "".join(
        f'<th class="name">{esc(h)}</th>' if i < names else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="name">{c if raw else esc(c)}</td>'
            if i < names
            else f"<td>{c if raw else esc(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    cls = f' class="{css}"' if css else ""
    return (
        f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def figure(src: str, caption: str, width: int | None = None) -> str:
    style = f' style="max-width:{width}px"' if width else ""
    return (
        f'<figure><img src="{esc(src)}" alt="{esc(caption)}"{style}>'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, header_meta: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """A whole page: ``header_meta`` and ``body`` are HTML already, the rest is escaped."""
    links = "".join(link(href, text) for href, text in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><div class="meta">{header_meta}</div>'
        f"<nav>{links}</nav></header><main>{body}</main></body></html>\n"
    )
