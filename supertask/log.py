"""structlog set-up, done once by the CLI: readable on a terminal, JSON lines otherwise.

structlog itself is imported on the first event that passes the level, not before:
``import structlog`` costs ~40 ms (its stdlib module imports asyncio) and ~70 ms more
when rich is installed, which a one-shot ``supertask run -- cmd:true`` (logging at
``warning``) never needs (docs/benchmarks.md). :func:`get_logger` hands out loggers
that drop events below the configured level before anything is imported.
"""

from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

# the stdlib's level numbers (logging.DEBUG ...): importing logging is ~3 ms of a one-shot run
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}

# What configure() asked for: (format, level) once called; applied on structlog's import.
_wanted: tuple[str, int] | None = None
_min_level = 0  # logging.NOTSET: events below it are dropped at once
_applied = False


def configure(log_format: str = "auto", level: str = "info", *, stdlib: bool = True) -> None:
    """Route supertask's events to stderr. ``auto`` picks console on a TTY, JSON otherwise.

    ``stdlib``: set up the stdlib's ``logging`` too (:func:`configure_stdlib`) for the
    libraries that log through it (APScheduler, SQLAlchemy, rpyc); the one-shot run,
    which imports none of them, leaves that to the code that does."""
    global _wanted, _min_level, _applied
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    numeric = _LEVELS.get(level.lower(), INFO)
    _wanted, _min_level, _applied = (log_format, numeric), numeric, False
    if log_format == "json":
        _json_excepthooks()
    if "structlog" in sys.modules:
        _apply()
    if stdlib:
        configure_stdlib()


def configure_stdlib() -> None:
    """Warnings and above of stdlib loggers to stderr; APScheduler's chatter at error
    unless the level is debug."""
    import logging

    if _wanted is not None and _wanted[0] == "json":  # one JSON event a record, its traceback a field
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter())
        logging.basicConfig(level=logging.WARNING, handlers=[handler])
    else:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR if _min_level > logging.DEBUG else logging.DEBUG)


class _JsonFormatterBase:
    """A stdlib log record as one JSON line, in the shape of supertask's own events
    (``event``, ``level``, ``logger``, ``timestamp``; ``exception``: the traceback text)."""

    def format(self, record: Any) -> str:
        import json
        import traceback
        from datetime import datetime, timezone

        event: dict[str, Any] = {
            "event": record.getMessage(), "level": record.levelname.lower(), "logger": record.name,
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        if record.exc_info:
            event["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(event, default=str)


def _JsonFormatter() -> Any:  # noqa: N802  (a class made on first use: logging is imported late)
    import logging

    return type("JsonFormatter", (_JsonFormatterBase, logging.Formatter), {})()


def _json_excepthooks() -> None:
    """Uncaught exceptions (the main thread's, other threads') as one JSON event each."""
    import threading

    def main_hook(kind: Any, value: Any, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        get_logger("supertask").error("uncaught exception", exc_info=(kind, value, tb))

    def thread_hook(args: Any) -> None:
        if args.exc_type is SystemExit:
            return
        get_logger("supertask").error("uncaught exception in a thread",
                                      thread=getattr(args.thread, "name", None),
                                      exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = main_hook
    threading.excepthook = thread_hook


def _apply() -> Any:
    """Import structlog and give it the configuration asked for (once)."""
    global _applied
    structlog = _import_structlog()
    if _wanted is not None and not _applied:
        log_format, numeric = _wanted
        processors: list[Any] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ]
        if log_format == "json":
            processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        else:
            processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
        structlog.configure(
            processors=processors,
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
    _applied = True
    return structlog


def _import_structlog() -> Any:
    """structlog without rich: ``structlog.dev`` imports rich (and pygments) when it is
    installed, as typer installs it, for pretty tracebacks. Plain tracebacks serve a
    scheduler's log as well."""
    if "rich" in sys.modules or "structlog" in sys.modules:
        import structlog

        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import structlog
    finally:
        del sys.modules["rich"]
    return structlog


class Logger:
    """A named structlog logger that drops events below the level without importing it."""

    __slots__ = ("_name", "_real")

    def __init__(self, name: str):
        self._name = name
        self._real: Any = None

    def _emit(self, method: str, level: int, event: str, kw: dict[str, Any]) -> Any:
        if level < _min_level:
            return None
        if self._real is None or not _applied:
            self._real = _apply().get_logger(self._name)
        return getattr(self._real, method)(event, **kw)

    def debug(self, event: str, **kw: Any) -> Any:
        return self._emit("debug", DEBUG, event, kw)

    def info(self, event: str, **kw: Any) -> Any:
        return self._emit("info", INFO, event, kw)

    def warning(self, event: str, **kw: Any) -> Any:
        return self._emit("warning", WARNING, event, kw)

    def error(self, event: str, **kw: Any) -> Any:
        return self._emit("error", ERROR, event, kw)

    def exception(self, event: str, **kw: Any) -> Any:
        return self._emit("exception", ERROR, event, kw)


def get_logger(name: str = "supertask") -> Logger:
    return Logger(name)


class Limited:
    """An event logged at most once every ``every`` seconds, with how many were left out
    since (a full disk or a store that is away must not fill the scheduler's own log).
    The one rate limit of supertask's repeated error events: run logs not kept, a store
    that is away (:mod:`supertask.store.health`), claims and schedule writes that fail."""

    def __init__(self, logger: str, every: float = 60.0, level: str = "error"):
        self.logger = logger
        self.every = every
        self.level = level
        self._at: float | None = None  # time.monotonic() when last said; None: never
        self._left_out = 0
        self._lock = threading.Lock()

    def said(self) -> None:
        """An event of the kind was said some other way, now: the next comes ``every`` seconds on."""
        with self._lock:
            self._at, self._left_out = time.monotonic(), 0

    def event(self, event: str, **facts: object) -> bool:
        """Log ``event`` with ``facts`` unless one was said within ``every`` seconds
        (then it is counted, and the next says how many); whether it was logged."""
        with self._lock:
            now = time.monotonic()
            if self._at is not None and now - self._at < self.every:
                self._left_out += 1
                return False
            left_out, self._left_out, self._at = self._left_out, 0, now
        getattr(get_logger(self.logger), self.level)(
            event, **facts, **({"left_out": left_out} if left_out else {}),
            limit=f"at most one such event every {self.every:g}s")
        return True
