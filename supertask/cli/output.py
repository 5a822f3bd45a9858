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


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                wide: bool = False, empty: str | None = None, keep: Sequence[str] = ()) -> None:
    """A table for people: as wide as the terminal (``COLUMNS``, else the terminal's width,
    else 80 columns), each cell cut to one line with … where it must be (the columns named
    in ``keep`` whole), or everything whole with ``wide``. No rows and ``empty``: that
    text instead of an empty box."""
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    if not cells and empty is not None:
        sys.stdout.write(empty + "\n")
        return
    tty = sys.stdout.isatty()
    if wide:
        width = max(80, natural_width(columns, cells))
    else:
        width = table_width(tty)
        cells = fit(columns, cells, width, keep=[i for i, c in enumerate(columns) if c in keep])
    text = plain_table(columns, cells, width) if title is None and not tty else None
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


def table_width(tty: bool) -> int:
    """``COLUMNS``, else the terminal's width, else 80 (a pipe, a file)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    if tty:
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns or 80
        except (OSError, ValueError):
            pass
    return 80


def natural_width(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> int:
    """The width of the table with every cell whole (HEAVY_HEAD box: 3 per column and 1)."""
    return sum(_natural(columns, cells)) + 3 * len(columns) + 1


def _natural(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(line) for text in column for line in (text.splitlines() or [""]))
            for column in zip(columns, *cells, strict=False)]


def fit(columns: Sequence[str], cells: list[list[str]], width: int, *, keep: Sequence[int] = ()) -> list[list[str]]:
    """``cells`` cut so that the table is at most ``width`` wide: the widest columns give
    way first, none below its header (or 5), none of ``keep``; a cut line ends in …."""
    natural = _natural(columns, cells)
    budget = width - 3 * len(columns) - 1
    if sum(natural) <= budget:
        return cells
    floor = [n if i in keep else min(n, max(len(columns[i]), 5)) for i, n in enumerate(natural)]
    low, high = 0, max(natural)  # the largest cap that fits (floors stay whole)
    while low < high:
        cap = (low + high + 1) // 2
        if sum(max(f, min(n, cap)) for f, n in zip(floor, natural, strict=True)) <= budget:
            low = cap
        else:
            high = cap - 1
    sizes = [max(f, min(n, low)) for f, n in zip(floor, natural, strict=True)]
    spare = budget - sum(sizes)  # what the cap left: to the widest cut columns, one each
    for i in sorted(range(len(sizes)), key=lambda i: -natural[i]):
        if spare <= 0:
            break
        if sizes[i] < natural[i]:
            sizes[i] += 1
            spare -= 1
    return [[_cut(text, size) for text, size in zip(row, sizes, strict=True)] for row in cells]


def _cut(text: str, size: int) -> str:
    lines = text.splitlines() or [""]
    return "\n".join(line if len(line) <= size else line[: size - 1] + "…" for line in lines)


#: Where rich would read markup (``[``), an emoji code (``:name:``) or a control character
#: in a cell: cells (one a line) outside this set and the table goes to rich.
_PLAIN_CELLS = re.compile(r"[ -Z\\\]-~\n…]*")  # … (one cell wide): what fit() cuts with
_EMOJI_CODE = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")  # rich._emoji_replace's pattern
_DIGIT_EMOJI = ("100", "1234")  # the only all-digit emoji names rich knows


def plain_table(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int | None) -> str | None:
    """The table exactly as rich prints it (``Table(header_style="bold")``, columns with
    ``overflow="fold"``, box HEAVY_HEAD) on a console that is no terminal and ``width``
    columns wide; None when rich would do more than pad cells: a terminal (colour,
    highlighting), a width to detect, an encoding other than UTF-8, a cell with markup,
    an emoji code, a control or non-ASCII character (but …), or a table wider than ``width``.
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


def print_jobs(rows: Iterable[dict[str, Any]], *, wide: bool = False) -> None:
    """The ``list-jobs`` table of its JSON rows (live or from the store); next fires in each
    job's time zone. One namespace: named above the table instead of in a column."""

    def state(r: dict[str, Any]) -> str:
        text = "paused" if r["paused"] else ("yes" if r["enabled"] else "no")
        return text + (" (running: " + ", ".join(map(str, r["running"])) + ")" if r.get("running") else "")

    rows = list(rows)
    table = [(r["namespace"], r["name"], r["when"], r["run"] if isinstance(r["run"], str) else "; ".join(r["run"]),
              state(r), zone_time(r["next_fire"], r.get("timezone"))) for r in rows]
    print_grouped(["namespace", "job", "when", "run", "enabled", "next fire"], table, wide=wide, empty="no jobs",
                  keep=("enabled", "next fire"))


def print_grouped(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, wide: bool = False,
                  empty: str | None = None, keep: Sequence[str] = (), shared: Sequence[str] = ("namespace",),
                  also: Sequence[str] = ()) -> None:
    """A table whose ``shared`` columns, when every row has the same value there, are said
    once above it (``namespace live, host web1``, then ``also``) instead of in a column each."""
    said = [c for c in shared if c in columns and len({row[columns.index(c)] for row in rows}) == 1]
    if said or (also and rows):
        index = [columns.index(c) for c in said]
        sys.stdout.write(", ".join([*(f"{c} {rows[0][i]}" for c, i in zip(said, index, strict=True)), *also]) + "\n")
        columns = [c for i, c in enumerate(columns) if i not in index]
        rows = [[v for i, v in enumerate(row) if i not in index] for row in rows]
    print_table(None, columns, rows, wide=wide, empty=empty, keep=keep)


def print_history(runs: Sequence[Any], zones: dict[tuple[str, str], str | None], *, wide: bool = False) -> None:
    """The ``history`` table: scheduled and started in each run's job's time zone (``zones``;
    the machine's for a job the store no longer has), how late a fire started when one
    was (10 ms or more), the exit code with the status, the attempt only when one was
    retried, and what every row shares said once above it."""
    from supertask.units import format_duration

    names = {zones.get((r.namespace, r.job)) for r in runs}
    one_zone = len(names) == 1
    rows: list[tuple[Any, ...]] = []
    for r in runs:
        d = r.to_json()
        zone = zones.get((r.namespace, r.job))
        scheduled = zone_time(d["scheduled"], zone)
        if one_zone:
            scheduled = scheduled.rsplit(" ", 1)[0]
        status = f"{r.status}" + (f" ({r.exit_code})" if r.exit_code not in (None, 0) else "")
        late = d.get("lateness")
        rows.append((r.id, r.namespace, r.job, r.attempt, r.reason, scheduled,
                     zone_time(d["started"], zone, d["scheduled"]),
                     format_duration(late) if late is not None and late >= 0.01 else "", status,
                     format_duration(d["duration"]), (r.host or "-").split(".")[0], r.message))
    columns = ["run", "namespace", "job", "try", "reason", "scheduled", "started", "late", "status", "took", "host",
               "note"]
    if not any(row[7] for row in rows):  # no run started 10 ms or more after its time
        columns, rows = columns[:7] + columns[8:], [row[:7] + row[8:] for row in rows]
    if all(r.attempt == 1 for r in runs):
        columns, rows = columns[:3] + columns[4:], [row[:3] + row[4:] for row in rows]
    also = [f"times in {names.pop() or _local_zone_name()}"] if one_zone and runs else []
    print_grouped(columns, rows, wide=wide, empty="no runs", keep=("scheduled", "started"),
                  shared=("namespace", "host", "reason"), also=also)


def print_namespaces(rows: Sequence[dict[str, Any]], *, wide: bool = False) -> None:
    """The ``list-namespaces`` table: times in the machine's zone, a host and user all share said above."""

    def local(iso: str | None) -> str:
        return zone_time(iso, None).removesuffix(" " + _local_zone_name())

    print_grouped(["namespace", "jobs", "source", "host", "user", "created", "updated"],
                  [(r["name"], r["jobs"], r["source"], r["host"], r["user"], local(r["created"]), local(r["updated"]))
                   for r in rows], wide=wide, empty="no namespaces", keep=("created", "updated"),
                  shared=("host", "user"), also=[f"times in {_local_zone_name()}"])


def _local_zone_name() -> str:
    from datetime import datetime

    return datetime.now().astimezone().strftime("%Z") or "the machine's zone"


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


@lru_cache(maxsize=4096)
def zone_time(iso: str | None, zone: str | None, day_of: str | None = None) -> str:
    """A time for a table, in ``zone`` (a job's time zone; None: the machine's, as the job
    fires by it): ``12-06 06:00 EST``, the year when it is not this year, the seconds when
    they are not 0. With ``day_of`` (another time) on the same day there: ``06:00:01``."""
    if not iso:
        return "-"
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(iso).astimezone(_zone(zone))
    except ValueError:
        return iso
    if day_of:
        try:
            other = datetime.fromisoformat(day_of).astimezone(dt.tzinfo)
        except ValueError:
            other = None
        if other is not None and other.date() == dt.date() and other.utcoffset() == dt.utcoffset():
            return dt.strftime("%H:%M:%S")
    day = "%m-%d" if dt.year == _this_year() else "%Y-%m-%d"
    return dt.strftime(f"{day} %H:%M{':%S' if dt.second else ''} %Z").strip()


@lru_cache(maxsize=64)
def _zone(name: str | None):  # type: ignore[no-untyped-def]
    if name:
        from zoneinfo import ZoneInfo

        try:
            return ZoneInfo(name)
        except (ValueError, OSError):
            pass
    return None  # astimezone(None): the machine's zone


@lru_cache(maxsize=1)
def _this_year() -> int:
    from datetime import datetime

    return datetime.now().year


def print_workers(rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    from supertask.units import format_duration

    table = [(r["host"], r["name"], ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) or "-",
              f"{r['in_flight']}/{r['slots']}", _worker_state(r), f"{format_duration(r['heartbeat_age'])} ago",
              *_worker_telemetry(r["telemetry"])) for r in rows]
    print_grouped(["host", "worker", "labels", "runs", "state", "heartbeat", "cpu", "mem", "io r/w"], table,
                  wide=wide, keep=("state", "heartbeat"), shared=("host",),
                  empty="no workers: start one with `supertask worker --store URL --labels K=V --slots N`")


def _worker_state(row: dict[str, Any]) -> str:
    asked = row.get("wanted")
    return row["state"] + (f"→{asked}" if asked and row["state"] not in ("stopped", "lost") else "")


def _worker_telemetry(tel: dict[str, Any]) -> tuple[str, str, str]:
    def pct(key: str) -> str:
        value = tel.get(key)
        return "-" if value is None else f"{float(value):.0f}%"

    def rate(key: str) -> str:
        value = tel.get(key)
        if value is None:
            return "-"
        size = float(value)
        for unit in ("B", "K", "M", "G"):
            if size < 1024 or unit == "G":
                return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
            size /= 1024
        return "-"  # pragma: no cover

    io = "-" if tel.get("disk_read") is None and tel.get("disk_write") is None else \
        f"{rate('disk_read')} {rate('disk_write')}"
    return pct("cpu"), pct("memory"), io
