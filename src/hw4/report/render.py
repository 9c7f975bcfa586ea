"""Markdown and HTML from the same `Document`.

The HTML is written here rather than converted from the Markdown (no Markdown package is a
dependency), and it is self-contained: figures are embedded as base64 data URIs, the style
is inline, nothing is fetched, so the one file can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

from hw4.report.document import Block, Document, Figure, Section, Table, Text

_CODE = re.compile(r"`([^`]*)`")
# Markdown syntax in plain text, backslash-escaped so text from data (a caption, a dataset
# name) stays text: links and images ([, ], !), emphasis (*, _ but not inside a word such as
# fashion_mnist, where CommonMark never reads it), strikethrough (~), a stray backtick, the
# backslash itself (before a backtick it would open text up to unescaped Markdown), and the
# colon of "scheme://", which GitHub would otherwise turn into a link by itself.
_MD_SPECIAL = re.compile(r"[\\`*\[\]!~]|(?<![^\W_])_|_(?![^\W_])|:(?=//)")
# At the start of a paragraph: a heading, list item or thematic break (">" is already &gt;).
_MD_BLOCK_START = re.compile(r"^(#|[-+=]|\d+[.)])")


def _spans(text: str) -> list[tuple[str, bool]]:
    """Text cut into (piece, is_code) at `code` spans."""
    parts = _CODE.split(text)
    return [(p, i % 2 == 1) for i, p in enumerate(parts) if p]


# --- Markdown ---------------------------------------------------------------------------

def _md_inline(text: str, in_table: bool = False) -> str:
    out = []
    for piece, code in _spans(text):
        if not code:
            piece = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), piece)
            # `<START>` and friends would be read as HTML tags and vanish; <http://...> would be a link.
            piece = piece.replace("<", "&lt;").replace(">", "&gt;")
        out.append(f"`{piece}`" if code else piece)
    joined = "".join(out).replace("\n", " ")
    return joined.replace("|", "\\|") if in_table else joined


def _md_paragraph(text: str) -> str:
    inline = _md_inline(text)
    return "\\" + inline if _MD_BLOCK_START.match(inline) else inline


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_md_inline(c, in_table=True) for c in cells) + " |"


def _md_table(t: Table) -> list[str]:
    lines = [_md_row(t.columns), "|" + "---|" * len(t.columns), *map(_md_row, t.rows)]
    # The blank line ends the table: a line right below it would be read as another row.
    return lines + (["", f"*{_md_inline(t.caption)}*"] if t.caption else [])


def _md_block(block: Block, base: Path) -> list[str]:
    if isinstance(block, Text):
        return [_md_paragraph(block.text)]
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        # Relative to the Markdown file, so the file works where it is and in a checkout.
        target = Path(os.path.relpath(Path(block.path).resolve(), base.resolve())).as_posix()
        return [f"![{_md_inline(block.caption)}]({target})", "", f"*{_md_inline(block.caption)}*"]
    raise TypeError(f"no Markdown for {type(block).__name__}")


def _md_section(section: Section, level: int, base: Path) -> list[str]:
    lines = [f"{'#' * level} {_md_inline(section.title)}", ""]
    for block in section.blocks:
        lines += _md_block(block, base) + [""]
    for sub in section.subsections:
        lines += _md_section(sub, level + 1, base)
    return lines


def to_markdown(doc: Document, base: Path) -> str:
    """`base`: the directory the Markdown file is written to (figure links are relative to it)."""
    lines = [f"# {_md_inline(doc.title)}", ""]
    for section in doc.sections:
        lines += _md_section(section, 2, base)
    return "\n".join(lines).rstrip() + "\n"


# --- HTML ---------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 76rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
th.homework, td.homework { background: #fff6dd; }
caption { caption-side: bottom; font-size: 0.85rem; color: #555; text-align: left; padding-top: 0.3rem; }
code { font-size: 0.85em; background: #f4f4f4; padding: 0 0.2em; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _html_inline(text: str) -> str:
    return "".join(f"<code>{html.escape(p)}</code>" if code else html.escape(p) for p, code in _spans(text))


def _html_table(t: Table) -> str:
    # Columns named for the homework are shaded: its figures stand beside the project's.
    shaded = [" class=\"homework\"" if c.startswith("homework") else "" for c in t.columns]
    head = "".join(f"<th{s}>{_html_inline(c)}</th>" for c, s in zip(t.columns, shaded))
    body = "".join(
        "<tr>" + "".join(f"<td{s}>{_html_inline(c)}</td>" for c, s in zip(row, shaded)) + "</tr>" for row in t.rows
    )
    caption = f"<caption>{_html_inline(t.caption)}</caption>" if t.caption else ""
    thead = f"<thead><tr>{head}</tr></thead>" if any(t.columns) else ""  # a key-value table has no heading
    return f"<table>{caption}{thead}<tbody>{body}</tbody></table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html_block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{_html_inline(block.text)}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        alt = html.escape(block.caption, quote=True)
        return f'<figure><img src="{_data_uri(block.path)}" alt="{alt}"><figcaption>{_html_inline(block.caption)}</figcaption></figure>'
    raise TypeError(f"no HTML for {type(block).__name__}")


def _html_section(section: Section, level: int) -> str:
    parts = [f"<h{level}>{_html_inline(section.title)}</h{level}>", *map(_html_block, section.blocks)]
    parts += [_html_section(sub, level + 1) for sub in section.subsections]
    return "<section>" + "\n".join(parts) + "</section>"


def to_html(doc: Document) -> str:
    title = _html_inline(doc.title)
    body = "\n".join(_html_section(s, 2) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(doc.title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
