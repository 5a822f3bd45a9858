"""Live commands: talk to a running scheduler over its control endpoint (supertask.control)."""

from __future__ import annotations

from supertask.cli import app  # noqa: F401
