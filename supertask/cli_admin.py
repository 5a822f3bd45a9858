"""Operator commands: import-crontab, init, doctor, service, prune."""

from __future__ import annotations

from supertask.cli import app  # noqa: F401
