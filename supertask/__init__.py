"""supertask: a cron replacement driven by YAML timetables."""

from __future__ import annotations

__version__ = "0.2.0.dev0"

__all__ = ["__version__"]
