"""``supertask --help`` as typer prints it at 80 columns or more, for :mod:`supertask.entry`
to print without importing typer (~60-110 ms). Click caps help at 80 columns, so any wider
terminal, and a pipe, get these bytes. tests/unit/test_entry.py fails when they are stale;
``make help-snapshot`` (``python -m supertask.cli.helptext``) writes them again.
"""

from __future__ import annotations

TOP = (
    'Usage: supertask [OPTIONS] COMMAND [ARGS]...\n'
    '\n'
    '  A cron replacement: YAML timetables, exact cron semantics, audited runs,\n'
    '  live control.\n'
    '\n'
    'Options:\n'
    '  -V, --version         Print the version and exit\n'
    '  --install-completion  Install completion for the current shell.\n'
    '  --show-completion     Show completion for the current shell, to copy it or\n'
    '                        customize the installation.\n'
    '  -h, --help            Show this message and exit.\n'
    '\n'
    'Commands:\n'
    '  run              Run the scheduler in the foreground, or one job once.\n'
    '  validate         Check a timetable: exit 0 when valid, 1 with every...\n'
    "  next             Show each job's next fire times, with a human...\n"
    '  list-namespaces  List the namespaces in the store, with where each came...\n'
    '  list-jobs        List jobs: live from the running scheduler when one...\n'
    "  history          List recorded runs, newest first, times in each job's...\n"
    "  logs             Print a run's log: its stdout and stderr, time-stamped...\n"
    "  prune            Apply run retention now: each job's history_keep, or...\n"
    '  import-crontab   Turn a crontab into a timetable on stdout; what does...\n'
    '  forget           Remove a namespace no scheduler serves any more: its...\n'
    '  init             Write a commented starter timetable (supertask.yaml).\n'
    '  doctor           Check the store, the state folder, uv, docker/podman,...\n'
    '  status           Show the running scheduler: uptime, jobs, runs in...\n'
    '  stop             Stop the scheduler gracefully: no new fires, running...\n'
    '  pause            Hold all firing (running jobs go on) until `supertask...\n'
    '  resume           Release firing held by `supertask pause`.\n'
    '  hosts            List the schedulers sharing the store: host, pid, up...\n'
    '  worker           Take runs from a PostgreSQL store and run them: those...\n'
    '  web              Serve the dashboard and the HTTP API (/api/v1, OpenAPI...\n'
    '  audit            Every change, newest first: when, who (a token or a...\n'
    '  service          Run supertask as a systemd service.\n'
    '  jobs             Change jobs of the running scheduler, live (each...\n'
    '  workers          The workers sharing the store: list them (the...\n'
    '  tokens           Tokens for the dashboard, the HTTP API and the TCP...\n'
)


def typer_help(columns: int | None = None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``supertask --help`` through typer, in a child process
    (so that typer sees a real pipe, or ``COLUMNS=columns``)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "_SUPERTASK_COMPLETE")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    code = "import sys; sys.argv[0] = 'supertask'; from supertask.cli.main import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "--help"], env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def write_snapshot() -> None:
    """Rewrite ``TOP`` in this file with typer's current rendering."""
    from pathlib import Path

    code, out, err = typer_help()
    if code != 0 or err:
        raise SystemExit(f"supertask --help failed ({code}): {err}")
    path = Path(__file__)
    head, sep, tail = path.read_text().partition("\nTOP = ")
    tail = tail[tail.index("\n\n\n"):]
    lines = "".join(f"    {line!r}\n" for line in out.splitlines(keepends=True))
    path.write_text(f"{head}{sep}(\n{lines}){tail}")


if __name__ == "__main__":
    write_snapshot()
