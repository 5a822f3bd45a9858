"""Tables: the plain renderer prints exactly what rich prints, or leaves the table to rich."""

from __future__ import annotations

import io
import random

import pytest

from supertask.cli.output import plain_table, print_table


def rich_table(columns: list[str], cells: list[list[str]], width: int = 200) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=None, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in cells:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=width).print(table)
    return out.getvalue()


JOBS = ["namespace", "job", "when", "run", "enabled", "next fire"]


@pytest.fixture(autouse=True)
def _no_colour_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cells", [
    [],
    [["bench", "j0", "0 0 1 1 *", "cmd:true", "yes", "2027-01-01 00:00:00+00:00"]],
    [["ns", "a", "@daily", "cmd:echo a:b c:d", "paused (running: 3, 4)", "-"],
     ["ns", "b-long-name", "every 5m", "exec:printf '%s\\n' x y; cmd:true", "no", "2026-12-02 03:00:00+01:00"]],
    [["  x ", "", "*/5 * * * *", "cmd:test -f /a\\b && :", "yes", "12:00:00"]],
])
def test_simple_tables_are_printed_as_rich_prints_them(cells: list[list[str]]) -> None:
    assert plain_table(JOBS, cells, 200) == rich_table(JOBS, cells)


@pytest.mark.parametrize(("cell", "why"), [
    ("cmd:echo [bold]x", "markup"),
    ("cmd:echo :smile: ok", "an emoji code"),
    ("at :100: percent", "an all-digit emoji code"),
    ("caf\u00e9", "not ASCII"),
    ("a\tb", "a tab"),
    ("line one\nline two", "two lines"),
    ("x" * 190, "wider than the console"),
])
def test_anything_rich_would_change_is_left_to_rich(cell: str, why: str) -> None:
    assert plain_table(JOBS, [["ns", "j", "@daily", cell, "yes", "-"]], 200) is None, why


def test_a_terminal_or_forced_colour_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plain_table(JOBS, [], None) is None  # a terminal: rich detects the width and colours
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert plain_table(JOBS, [], 200) is None


def test_random_tables_either_match_rich_or_are_left_to_it() -> None:
    rng = random.Random(7)
    alphabet = "ab Z09:-*/_.;'\"\\[]()~@é\t\n"
    plain = 0
    for _ in range(400):
        ncols = rng.randint(1, 5)
        columns = ["".join(rng.choice("abcxyz ") for _ in range(rng.randint(1, 9))) for _ in range(ncols)]
        cells = [["".join(rng.choice(alphabet) for _ in range(rng.randint(0, rng.choice((4, 12, 70)))))
                  for _ in range(ncols)] for _ in range(rng.randint(0, 4))]
        text = plain_table(columns, cells, 200)
        if text is not None:
            plain += 1
            assert text == rich_table(columns, cells), (columns, cells)
    assert plain > 50  # the check above saw enough tables the plain renderer printed


def test_print_table_prints_the_same_either_way(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("ns", "j", "@daily", "cmd:true", "yes", None), ("ns", "k", "@daily", "caf\u00e9", "no", "-")]
    print_table(None, JOBS, rows[:1])
    assert capsys.readouterr().out == rich_table(JOBS, [["ns", "j", "@daily", "cmd:true", "yes", "-"]])
    print_table(None, JOBS, rows)  # goes to rich (a non-ASCII cell)
    assert capsys.readouterr().out == rich_table(JOBS, [[str(v or "-") for v in r] for r in rows])


@pytest.mark.parametrize(("columns", "cells", "width", "keep", "fitted"), [
    # fits already: untouched
    (["a", "b"], [["x", "y"]], 80, (), [["x", "y"]]),
    # the widest column gives way, cut with …; the table is then exactly as wide as allowed
    (["job", "run"], [["backup", "cmd:" + "x" * 100]], 40, (), [["backup", "cmd:" + "x" * 22 + "…"]]),
    # a kept column stays whole, the others share what is left
    (["run", "next fire"], [["r" * 60, "12-06 06:00 EST"]], 40, (1,), [["r" * 17 + "…", "12-06 06:00 EST"]]),
    # no column below its header (or 5): the table may stay wider than asked
    (["namespace", "note"], [["n" * 30, "m" * 30]], 10, (), [["n" * 8 + "…", "m" * 4 + "…"]]),
    # each line of a cell is cut on its own
    (["fires"], [["a" * 20 + "\n" + "b" * 3]], 10, (), [["a" * 5 + "…\nbbb"]]),
])
def test_fit_cuts_cells_to_the_width(columns: list[str], cells: list[list[str]], width: int, keep: tuple[int, ...],
                                     fitted: list[list[str]]) -> None:
    from supertask.cli.output import fit, natural_width

    assert fit(columns, cells, width, keep=keep) == fitted
    assert natural_width(columns, fitted) <= width or width == 10 and columns[0] == "namespace"
