"""The keys of a native timetable (top level, a job, a step) and the words people
write for them, from cron, systemd, APScheduler, Dagu and CI files (a misspelt or
borrowed key is an error that names the key meant)."""

from __future__ import annotations

TOP_KEYS = ("namespace", "defaults", "jobs", "weight", "max_running")
JOB_KEYS = (
    "name", "when", "run", "steps", "description", "enabled", "timeout", "retries",
    "retry_delay", "retry_backoff", "overlap", "misfire_grace", "jitter", "timezone",
    "cwd", "env", "env_file",
    "retry_on", "retry_delay_max", "kill_grace", "max_concurrent", "catch_up", "log_max",
    "history_keep", "on_success", "on_failure", "on_retry", "ping", "mailto",
    "volumes", "network", "pull", "cpus", "memory", "docker_cli", "on", "priority",
)  # fmt: skip
STEP_KEYS = ("name", "run", "if", "continue_on_error")

# Words people write for a key, from cron, systemd, APScheduler, Dagu, CI files.
TOP_ALIASES = {"job": "jobs", "default": "defaults", "ns": "namespace", "name": "namespace",
               "share": "weight", "max_concurrent": "max_running", "concurrency": "max_running"}
JOB_ALIASES = {
    "schedule": "when", "cron": "when", "at": "when", "every": "when", "trigger": "when",
    "interval": "when", "calendar": "when", "oncalendar": "when",
    "command": "run", "cmd": "run", "exec": "run", "script": "run", "shell": "run",
    "uses": "run", "action": "run",
    "timeout_seconds": "timeout", "timeout_sec": "timeout", "max_runtime": "timeout",
    "time_limit": "timeout", "timeout_s": "timeout",
    "retry": "retries", "max_retries": "retries", "attempts": "retries", "retry_count": "retries",
    "retry_interval": "retry_delay", "retry_wait": "retry_delay", "backoff": "retry_backoff",
    "concurrency": "overlap", "max_instances": "overlap", "concurrent": "overlap",
    "misfire_grace_time": "misfire_grace", "grace": "misfire_grace", "grace_time": "misfire_grace",
    "tz": "timezone", "time_zone": "timezone",
    "workdir": "cwd", "working_dir": "cwd", "working_directory": "cwd", "dir": "cwd",
    "directory": "cwd", "environment": "env", "envfile": "env_file", "dotenv": "env_file",
    "environment_file": "env_file", "disabled": "enabled", "active": "enabled", "enable": "enabled",
    "id": "name", "title": "name", "desc": "description", "comment": "description",
    "step": "steps", "tasks": "steps",
    "labels": "on", "selector": "on", "selectors": "on", "worker_selector": "on", "runs_on": "on",
    "runs-on": "on", "nice": "priority",
    "mail_to": "mailto", "mail": "mailto", "email": "mailto", "MAILTO": "mailto", "notify_email": "mailto",
}  # fmt: skip
STEP_ALIASES = {
    "command": "run", "cmd": "run", "script": "run", "uses": "run", "when": "if",
    "condition": "if", "continue-on-error": "continue_on_error", "ignore_errors": "continue_on_error",
    "allow_failure": "continue_on_error", "ignore_failure": "continue_on_error",
}  # fmt: skip
