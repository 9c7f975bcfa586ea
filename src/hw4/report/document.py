"""The report as data: sections of blocks that both renderers (Markdown, HTML) walk.

Text may carry `code` spans in backticks; everything else is plain text, escaped by the
renderer. Cells are already formatted strings, so both outputs show the same digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union


@dataclass
class Text:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    path: Path  # a PNG on disk: linked from the Markdown, embedded in the HTML
    caption: str


Block = Union[Text, Table, Figure]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list["Section"] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]
