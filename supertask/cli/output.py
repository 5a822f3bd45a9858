"""Printing for people (rich tables) and for scripts (``--json``)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    width = None if sys.stdout.isatty() else 200
    text = plain_table(columns, cells, width) if title is None else None
    if text is not None:
        sys.stdout.write(text)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in cells:
        table.add_row(*row)
    Console(width=width).print(table)


#: Where rich would read markup (``[``), an emoji code (``:name:``) or a control character
#: in a cell: cells (one a line) outside this set and the table goes to rich.
_PLAIN_CELLS = re.compile(r"[ -Z\\\]-~\n]*")
_EMOJI_CODE = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")  # rich._emoji_replace's pattern
_DIGIT_EMOJI = ("100", "1234")  # the only all-digit emoji names rich knows


def plain_table(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int | None) -> str | None:
    """The table exactly as rich prints it (``Table(header_style="bold")``, columns with
    ``overflow="fold"``, box HEAVY_HEAD) on a console that is no terminal and ``width``
    columns wide; None when rich would do more than pad cells: a terminal (colour,
    highlighting), a width to detect, an encoding other than UTF-8, a cell with markup,
    an emoji code, a control or non-ASCII character, or a table wider than ``width``.
    1,000 rows take rich about a second; this, a few milliseconds
    (tests/unit/test_output.py compares the two)."""
    if width is None or not columns or os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") == "1":
        return None
    if not (getattr(sys.stdout, "encoding", None) or "utf-8").lower().startswith("utf"):
        return None
    if any(len(row) != len(columns) for row in cells):
        return None
    text = "\n".join(["\n".join(columns), *("\n".join(row) for row in cells)])
    if text.count("\n") != len(columns) * (len(cells) + 1) - 1 or not _PLAIN_CELLS.fullmatch(text):
        return None
    # no emoji code spans two cells: \S stops at the newline between them
    if ":" in text and any(not m[2].isdigit() or m[2] in _DIGIT_EMOJI for m in _EMOJI_CODE.finditer(text) if m[2]):
        return None
    sizes = [max(map(len, column)) for column in zip(columns, *cells, strict=True)]
    if sum(sizes) + 3 * len(sizes) + 1 > width:
        return None

    def line(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (n + 2) for n in sizes) + right + "\n"

    head, body = " ┃ ", " │ "
    out = [line("┏", "━", "┳", "┓"), "┃ " + head.join(map(str.ljust, columns, sizes)) + " ┃\n",
           line("┡", "━", "╇", "┩")]
    out += ["│ " + body.join(map(str.ljust, row, sizes)) + " │\n" for row in cells]
    out.append(line("└", "─", "┴", "┘"))
    return "".join(out)


def print_jobs(rows: Iterable[dict[str, Any]]) -> None:
    """The ``list-jobs`` table of its JSON rows (live or from the store)."""

    def state(r: dict[str, Any]) -> str:
        text = "paused" if r["paused"] else ("yes" if r["enabled"] else "no")
        return text + (" (running: " + ", ".join(map(str, r["running"])) + ")" if r.get("running") else "")

    print_table(None, ["namespace", "job", "when", "run", "enabled", "next fire"],
                [(r["namespace"], r["name"], r["when"], r["run"] if isinstance(r["run"], str) else "; ".join(r["run"]),
                  state(r), short_time(r["next_fire"])) for r in rows])


def error(message: str) -> None:
    sys.stderr.write(f"supertask: {message}\n")


@lru_cache(maxsize=1024)  # a table of 1,000 jobs often has a few distinct times
def short_time(iso: str | None) -> str:
    """``2026-12-02T03:00:00.5+01:00`` -> ``2026-12-02 03:00:00+01:00``: seconds kept, the
    offset always (a whole-second time in Europe/Berlin must not read as UTC)."""
    if not iso:
        return "-"
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    offset = dt.strftime("%z")
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (f"{offset[:3]}:{offset[3:5]}" if offset else "")
