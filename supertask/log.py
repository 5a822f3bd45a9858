"""structlog set-up, done once by the CLI: readable on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(log_format: str = "auto", level: str = "info") -> None:
    """Route supertask's events to stderr. ``auto`` picks console on a TTY, JSON otherwise."""
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    processors: list[structlog.typing.Processor] = [
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
    # APScheduler logs through the stdlib: keep its chatter at warning and above.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR if numeric > logging.DEBUG else logging.DEBUG)


def get_logger(name: str = "supertask") -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
