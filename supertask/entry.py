"""The console script. ``supertask run [OPTIONS] -- KIND:TARGET`` (a one-shot run),
``supertask list-jobs [--json] [--wide] [--ns NS]`` answered by a running scheduler,
``supertask --help`` and ``supertask --version`` skip typer; everything else goes to
:mod:`supertask.cli`.

Importing typer and building its click commands is 60-110 ms, most of what a one-shot
``supertask run -- cmd:true`` or ``supertask --help`` costs (docs/benchmarks.md; the
target is 120 ms). The one-shot path takes only the options a one-shot run has
(``--name``, ``--store``, ``--home``, ``--ns``/``--namespace``, ``--log-format``,
``--log-level``, ``--when once|now``, as ``--opt VALUE`` or ``--opt=VALUE``), reads
the same ``SUPERTASK_*`` variables, and calls the same :func:`supertask.cli.commands.run`.
Anything else, including a value it would have to reject, goes through typer, which
gives the usual help and error messages. A live ``list-jobs`` that finds no scheduler
(or any error) is left to typer too, which then reads the store. ``--help``, ``-h`` and
a bare ``supertask`` print :data:`supertask.cli.helptext.TOP`, typer's own text, when typer
would print exactly that: the program is called ``supertask``, help is 80 columns wide
and no shell completion is asked for.
"""

from __future__ import annotations

import gc
import os
import sys

_VALUED = {"--name": "name", "--store": "store", "--home": "home", "--ns": "namespace", "--namespace": "namespace",
           "--log-format": "log_format", "--log-level": "log_level", "--when": "when"}
# set in the environment, these go through typer, which checks them as it always does
_SCHEDULER_ONLY = ("file", "grace", "max_workers", "max_concurrent", "listen", "token", "metrics", "watch",
                   "heartbeat", "lease", "lease_lost", "http")


def one_shot_args(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """The options and command of ``run [OPTIONS] -- KIND:TARGET ...``, or None when
    ``argv`` is anything else (or the environment sets an option of a scheduler)."""
    from supertask.settings import LOG_FORMATS, LOG_LEVELS, ONE_SHOT_LOG_LEVEL, default, env_name

    if len(argv) < 3 or argv[0] != "run" or "--" not in argv:
        return None
    split = argv.index("--")
    command = argv[split + 1:]
    if not command:
        return None
    opts: dict[str, str] = {}
    words = iter(argv[1:split])
    for word in words:
        flag, eq, value = word.partition("=")
        key = _VALUED.get(flag)
        if key is None or key in opts:
            return None
        if not eq:
            value = next(words, "")
            if not value or value.startswith("-"):
                return None
        opts[key] = value
    for key in ("namespace", "log_format", "log_level", "when"):
        if key not in opts and os.environ.get(env_name(key)):
            opts[key] = os.environ[env_name(key)]
    if any(os.environ.get(env_name(key)) for key in _SCHEDULER_ONLY) or opts.get("when", "once") not in ("once", "now"):
        return None
    if (opts.get("log_format", default("log_format")) not in LOG_FORMATS
            or opts.get("log_level", ONE_SHOT_LOG_LEVEL).lower() not in LOG_LEVELS):
        return None
    return opts, command


def main() -> None:
    argv = sys.argv[1:]
    if argv in (["--version"], ["-V"]):
        from supertask import __version__

        print(f"supertask {__version__}")
        return
    if argv in ([], ["--help"], ["-h"]) and _help_is_the_snapshot():
        from supertask.cli.helptext import TOP

        if argv:
            sys.stdout.write(TOP)
            return
        sys.stderr.write(TOP)  # typer's no_args_is_help: the help on stderr, exit 2
        sys.exit(2)
    if _live_list_jobs(argv):
        return
    gc.disable()  # until the one-shot run's modules are in: see _load_one_shot()
    parsed = one_shot_args(argv)
    if parsed is None:
        gc.enable()
        from supertask.cli.main import main as cli_main

        cli_main()
        return
    _load_one_shot()
    from supertask.errors import SupertaskError

    try:
        sys.exit(_run_once(*parsed))
    except SupertaskError as exc:
        from supertask.cli.output import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _load_one_shot() -> None:
    """Import what a one-shot run uses with the cyclic garbage collector off, then
    freeze it. Importing creates only objects that live until exit (modules, classes,
    functions); the collector would walk them again and again while they come in and
    once more at exit: ~8 ms of a ~50 ms run, measured. Frozen, they are
    out of its sight; what the run allocates afterwards is collected as usual."""
    from supertask.cli import commands  # noqa: F401
    from supertask.launchers import docker, python, shell, uv  # noqa: F401  (launcher_for's table)
    from supertask.runs import runner  # noqa: F401
    from supertask.store import lite as litestore  # noqa: F401

    gc.freeze()
    gc.enable()


def _run_once(opts: dict[str, str], command: list[str]) -> int:
    from supertask.cli import commands
    from supertask.log import configure
    from supertask.settings import ONE_SHOT_LOG_LEVEL, Settings, default

    log_format = opts.get("log_format", default("log_format"))
    log_level = opts.get("log_level", ONE_SHOT_LOG_LEVEL)
    configure(log_format, log_level, stdlib=False)  # nothing here logs through the stdlib's logging
    settings = Settings.build(home=opts.get("home"), store=opts.get("store"), log_format=log_format,
                              log_level=log_level)
    return commands.run(settings, command=command, file=None, when=opts.get("when"),
                        name=opts.get("name"), namespace=opts.get("namespace"))


def _help_is_the_snapshot() -> bool:
    """Whether typer's top-level help would be :data:`supertask.cli.helptext.TOP`: click names
    the program after ``sys.argv[0]`` (``python -m supertask`` is another name) and wraps
    help at ``min(shutil.get_terminal_size().columns, 80) - 2``, which this reads as
    shutil does (COLUMNS, else the terminal of stdout, else 80) without importing shutil."""
    if sys.stdout is None or sys.stderr is None:  # closed: click's echo prints nothing
        return False
    main = sys.modules.get("__main__")
    if getattr(main, "__package__", None) not in (None, "") or os.path.basename(sys.argv[0]) != "supertask":
        return False
    if os.environ.get("_SUPERTASK_COMPLETE"):
        return False
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns >= 80


def _live_list_jobs(argv: list[str]) -> bool:
    """``list-jobs [--json] [--wide] [--ns NS]`` from the running scheduler: True when printed."""
    if not argv or argv[0] != "list-jobs":
        return False
    from supertask.settings import env_name

    rest = [a for a in argv[1:] if a not in ("--json", "--wide")]
    namespace = os.environ.get(env_name("namespace")) or None
    if len(rest) == 2 and rest[0] in ("--ns", "--namespace") and not rest[1].startswith("-"):
        namespace = rest[1]
    elif rest:
        return False
    try:
        from supertask.control.client import connect
        from supertask.settings import state_home

        with connect(os.environ.get(env_name("connect")) or None, home=state_home(None), namespace=namespace,
                     token=os.environ.get(env_name("token")) or None) as client:
            rows = client.call("list_jobs", namespace)
    except Exception:  # no scheduler, or an error typer's path reports as usual
        return False
    if "--json" in argv:
        from supertask.cli.output import print_json

        print_json(rows)
    else:
        from supertask.cli.output import print_jobs

        print_jobs(rows, wide="--wide" in argv)
    return True
