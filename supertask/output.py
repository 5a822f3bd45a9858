"""Printing for people (rich tables) and for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def error(message: str) -> None:
    sys.stderr.write(f"supertask: {message}\n")


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
