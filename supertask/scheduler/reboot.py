"""``@reboot`` and ``@restart``: which jobs fire when the scheduler starts.

Cron runs ``@reboot`` jobs once when the machine boots. supertask runs them when
the scheduler starts *after a boot*: the boot (the kernel's boot id,
``/proc/sys/kernel/random/boot_id``; where there is none, the boot time) is kept in
the store per namespace and host, and only the first start of that namespace on
that host that sees a new boot fires them; restarting supertask on the same boot
does not, nor does another scheduler of the namespace on the same host serving it
from another state folder (a shared store). Hosts are told apart by name: each
host's boot fires the namespace's ``@reboot`` jobs once. ``@restart`` jobs fire at
every start. A job first added (or changed) fires once when synced, like ``once``.

Before 0.2.0 the boot time was kept per state folder (``$SUPERTASK_HOME/boot/<namespace>``);
a store with no boot recorded yet takes that file's word for the current boot, so
the upgrade does not fire ``@reboot`` jobs again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supertask.model import Job
from supertask.schedules.trigger import parse_when

BOOT_FOLDER = "boot"  # the per-folder marker of older releases (read once, at the upgrade)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_time() -> float:
    """When this machine booted (epoch seconds), as the kernel reports it."""
    import psutil

    return float(psutil.boot_time())


def boot_id() -> str:
    """This boot's identity: the kernel's boot id, else the boot time (whole minutes:
    the kernel derives it from the uptime, and it wobbles by a second between reads)."""
    try:
        text = BOOT_ID.read_text().strip()
    except OSError:
        text = ""
    return text or f"boot-time-{round(boot_time() / 60)}"


def boot_key(namespace: str, host: str) -> str:
    from supertask.model import sha256_hex

    return "boot:" + sha256_hex(f"{namespace}|{host}".encode())[:40]


def booted_since_last_start(store: Any, namespace: str, host: str, boot: str, home: Path | None = None) -> bool:
    """True for the first start of ``namespace`` on ``host`` that sees the boot ``boot``
    (none recorded counts as a new boot); records ``boot`` in the store either way.
    Of several starts at once, one gets True."""
    key = boot_key(namespace, host)
    if home is not None and store.get_meta(key) is None and _old_marker_is_this_boot(home, namespace):
        store.swap_meta(key, boot)
        return False
    return bool(store.swap_meta(key, boot))


def _old_marker_is_this_boot(home: Path, namespace: str) -> bool:
    """The state folder's marker of an older release names this boot (within 2 s)."""
    try:
        last = float((home / BOOT_FOLDER / namespace).read_text().strip())
    except (OSError, ValueError):
        return False
    return abs(last - boot_time()) <= 2


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


def fire_start_jobs(settings: Any, store: Any, namespace: str, log: Any, *, jobs: Iterable[Job] | None = None,
                    restart: tuple[str, ...] = (), reboot: tuple[str, ...] = ()) -> None:
    """Make the jobs due at this start fire now: ``@restart`` ones always, ``@reboot``
    ones at the first start of the namespace on this host since it booted. The jobs are
    ``jobs`` (a timetable just synced), or named by a sync mark (``restart``, ``reboot``)."""
    import time

    boot = boot_id()
    booted = booted_since_last_start(store, namespace, settings.host, boot, settings.home)
    due = start_jobs(jobs, booted=booted) if jobs is not None else [*restart, *(reboot if booted else ())]
    if due:
        store.set_next_run_times(namespace, [(name, time.time()) for name in due])
    log.info("start jobs", namespace=namespace, booted=booted, boot=boot, host=settings.host, due=due)
