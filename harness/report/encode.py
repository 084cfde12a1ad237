"""Untrusted text, encoded for each output format in one place (docs/SECURITY.md, "Hand-ins
as data"; for CSV, OWASP's "CSV Injection" guidance).

Untrusted is every string that came from a hand-in, a roster, an archive's member table, a
model file or a worker: names, ids, reasons, errors, stderr tails, manifest fields. Every
writer of a CSV, Markdown, terminal or HTML output passes such text through the one
encoder of its format here, never through its own:

- ``plain``: one line of printable text, the base of the others: control and bidi-override
  characters removed, line breaks folded into spaces, lone surrogates (the bytes of a
  name that is not UTF-8) shown as U+FFFD, so that writing it as UTF-8 cannot fail;
- ``csv_cell``: ``plain``, a ``<`` that would open an HTML tag as ``&lt;``, and a cell that
  begins with ``= + - @`` tab or CR prefixed with ``'`` (OWASP's CSV-injection guidance),
  so a spreadsheet shows it as text;
- ``md_text``: ``plain`` with HTML (``& < >``) as entities and Markdown's syntax escaped
  (table pipes, emphasis, links, code, headings and list markers at the start);
- ``terminal`` / ``terminal_markup``: ``plain`` (no escape sequence reaches the
  terminal), and for a Rich console that reads markup, its brackets escaped too;
- ``html_text``: HTML-escaped (quotes included); line breaks are kept (``<pre>`` shows
  stderr tails), control characters but tab and newline removed.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Iterable
from typing import IO, Any

from rich.markup import escape as _rich_escape

#: Line breaks, folded into one space each (CR LF counts as one).
_BREAKS = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: Bidirectional overrides and marks: they reorder what a reader sees (Trojan Source).
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: What ``plain`` removes or replaces, one character each: C0 and C1 controls, DEL, bidi
#: controls (removed), a tab (a space) and lone surrogates (U+FFFD).
_DROP: dict[int, str | None] = {c: None for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_DROP.update({ord(c): None for c in _BIDI})
_DROP[ord("\t")] = " "
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Characters a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Markdown's inline syntax, escaped everywhere (``|`` splits a table cell; ``$`` starts
#: math on GitHub); HTML's three as entities.
_MD = str.maketrans(
    {c: "\\" + c for c in "\\`*_[]|~!#$"} | {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
)
#: What begins a block when it starts a line: a list item, a heading underline, a
#: numbered item ("1." or "1)").
_MD_START = re.compile(r"^([-+=])|^(\d+)([.)])")


#: A ``<`` that opens an HTML tag, comment or declaration (``0.05 < 0.9`` stays as it is).
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def plain(value: object) -> str:
    """``value`` as one line of printable text (the base of every encoder here)."""
    text = _SURROGATE.sub("\ufffd", str(value))
    return _BREAKS.sub(" ", text).translate(_DROP)


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet cannot read as a formula, and a viewer that renders cells as
    HTML (a course site's table, a Git host's CSV view) cannot read as markup."""
    text = _TAG_OPEN.sub("&lt;", plain(value))
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(fh: IO[str], rows: Iterable[Iterable[Any]]) -> None:
    """Rows to ``fh`` with every cell through ``csv_cell`` (and quoted, as OWASP asks)."""
    writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows([csv_cell("" if c is None else c) for c in row] for row in rows)


def md_text(value: object) -> str:
    """Text for any place in a Markdown file (a table cell, a list item, a heading): no
    raw HTML, no Markdown syntax, no second line."""
    text = plain(value).strip().translate(_MD)
    return _MD_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)


def terminal(value: object) -> str:
    """Text for a terminal: no escape sequence, no control character, one line."""
    return plain(value)


def terminal_markup(value: object) -> str:
    """``terminal`` text for a Rich console that reads markup: its ``[`` escaped too."""
    return _rich_escape(terminal(value))


def html_text(value: object) -> str:
    """Text for HTML, element content or attribute value."""
    text = _SURROGATE.sub("\ufffd", str(value))
    return html.escape(text.translate(_HTML_DROP), quote=True)


_HTML_DROP = {k: v for k, v in _DROP.items() if k not in (ord("\t"), ord("\n"))}
_HTML_DROP[ord("\r")] = None
