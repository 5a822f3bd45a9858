"""``@reboot`` and ``@restart``: which jobs fire when the scheduler starts.

Cron runs ``@reboot`` jobs once when the machine boots. supertask runs them when
the scheduler starts *after a boot*: the machine's boot time (psutil) is kept per
namespace in the state folder (``$SUPERTASK_HOME/boot/<namespace>``), and only a
start that sees a different boot time than the last start of that namespace fires
them; restarting supertask on the same boot does not. ``@restart`` jobs fire at
every start. A job first added (or changed) fires once when synced, like ``once``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from supertask.model import Job
from supertask.schedules.trigger import parse_when

BOOT_FOLDER = "boot"


def boot_time() -> float:
    """When this machine booted (epoch seconds), as the kernel reports it."""
    import psutil

    return float(psutil.boot_time())


def booted_since_last_start(home: Path, namespace: str, boot: float) -> bool:
    """True when ``boot`` differs from the boot time recorded at the namespace's last
    start (or none was recorded); records ``boot`` either way.

    The kernel's boot time can wobble by a second between reads (it is derived from
    uptime), so times within 2 s count as the same boot.
    """
    path = home / BOOT_FOLDER / namespace
    try:
        last: float | None = float(path.read_text().strip())
    except (OSError, ValueError):
        last = None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{boot:.0f}\n")
    os.replace(tmp, path)
    return last is None or abs(last - boot) > 2


def start_jobs(jobs: Iterable[Job], *, booted: bool) -> list[str]:
    """Names of the enabled jobs due at this start: ``@restart`` always, ``@reboot``
    when the machine ``booted`` since the last start."""
    due = []
    for job in jobs:
        if not job.enabled or not job.when.strip().startswith("@"):
            continue
        kind = parse_when(job.when, job.timezone).kind
        if kind == "restart" or (kind == "reboot" and booted):
            due.append(job.name)
    return due
