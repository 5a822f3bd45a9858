"""Timetables: YAML text -> model with file:line errors; the legacy format; crontab import."""
