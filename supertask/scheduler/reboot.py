"""``@reboot`` and ``@restart``: which jobs fire when the scheduler starts.

Cron runs ``@reboot`` jobs once when the machine boots. supertask runs them when
the scheduler starts *after a boot*: the boot (the kernel's boot id,
``/proc/sys/kernel/random/boot_id``; where there is none, the boot time) is kept in
the store per namespace and machine, and only the first start of that namespace on
that machine that sees a new boot fires them; restarting supertask on the same boot
does not, nor does another scheduler of the namespace on the same machine serving it
from another state folder (a shared store). Machines are told apart by their
``/etc/machine-id`` (systemd's, else ``/var/lib/dbus/machine-id``), not by name: two
machines that share a host name each fire the namespace's ``@reboot`` jobs once per
boot of their own (keyed by name, each one's start took the other's boot for a new one
and fired again). A machine with no machine id is known by its host name, as before.
``@restart`` jobs fire at every start. A job first added (or changed) fires once when
synced, like ``once``.

Upgrades fire nothing again: a store with no boot recorded for this machine takes the
word of the key of 0.2.0's development versions (namespace and host name) when it holds
this very boot, and before that of the state folder's marker of older releases
(``$SUPERTASK_HOME/boot/<namespace>``, the boot time).

``SUPERTASK_TEST_MACHINE`` (tests only) names a folder whose ``machine-id`` and
``boot_id`` files stand for this machine's, so one test can start schedulers that
look like two machines, or two boots.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supertask.model import Job
from supertask.schedules.trigger import parse_when

BOOT_FOLDER = "boot"  # the per-folder marker of older releases (read once, at the upgrade)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MACHINE_IDS = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
TEST_MACHINE = "SUPERTASK_TEST_MACHINE"  # tests only: a folder standing for this machine (module doc)


def _fake(name: str) -> Path | None:
    folder = os.environ.get(TEST_MACHINE)
    return Path(folder) / name if folder else None


def boot_time() -> float:
    """When this machine booted (epoch seconds), as the kernel reports it."""
    import psutil

    return float(psutil.boot_time())


def boot_id() -> str:
    """This boot's identity: the kernel's boot id, else the boot time (whole minutes:
    the kernel derives it from the uptime, and it wobbles by a second between reads)."""
    try:
        text = (_fake("boot_id") or BOOT_ID).read_text().strip()
    except OSError:
        text = ""
    return text or f"boot-time-{round(boot_time() / 60)}"


def machine_id() -> str | None:
    """This machine's id (``/etc/machine-id``, else D-Bus's copy): 32 hex digits, set
    once at installation; None where there is none (empty, ``uninitialized``, absent)."""
    fake = _fake("machine-id")
    for path in (fake,) if fake else MACHINE_IDS:
        try:
            text = path.read_text().strip().lower()
        except OSError:
            continue
        if re.fullmatch(r"[0-9a-f]{32}", text):
            return text
    return None


def boot_key(namespace: str, host: str, machine: str | None = None) -> str:
    """The store's key of the boot last seen by ``namespace`` on this machine: by its
    machine id; by the host name where it has none (and the key of 0.2.0's development
    versions, which the upgrade reads)."""
    from supertask.model import sha256_hex

    who = f"machine-id:{machine}" if machine else host
    return "boot:" + sha256_hex(f"{namespace}|{who}".encode())[:40]


def booted_since_last_start(store: Any, namespace: str, host: str, boot: str, home: Path | None = None,
                            machine: str | None = None) -> bool:
    """True for the first start of ``namespace`` on this machine (``machine``, its id,
    else ``host``) that sees the boot ``boot`` (none recorded counts as a new boot);
    records ``boot`` in the store either way. Of several starts at once, one gets True."""
    key = boot_key(namespace, host, machine)
    if store.get_meta(key) is None and _upgraded_on_this_boot(store, namespace, host, boot, home, machine):
        store.swap_meta(key, boot)
        return False
    return bool(store.swap_meta(key, boot))


def _upgraded_on_this_boot(store: Any, namespace: str, host: str, boot: str, home: Path | None,
                           machine: str | None) -> bool:
    """Nothing recorded for this machine yet: an older release's record names this boot
    (the host name's key holding this very boot id: boot ids are random, so no other
    machine of that name wrote it; else the state folder's boot time marker)."""
    old = store.get_meta(boot_key(namespace, host)) if machine else None
    if old is not None:
        return bool(old == boot)
    return home is not None and _old_marker_is_this_boot(home, namespace)


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
    ones at the first start of the namespace on this machine since it booted. The jobs are
    ``jobs`` (a timetable just synced), or named by a sync mark (``restart``, ``reboot``)."""
    import time

    boot, machine = boot_id(), machine_id()
    booted = booted_since_last_start(store, namespace, settings.host, boot, settings.home, machine)
    due = start_jobs(jobs, booted=booted) if jobs is not None else [*restart, *(reboot if booted else ())]
    if due:
        store.set_next_run_times(namespace, [(name, time.time()) for name in due])
    log.info("start jobs", namespace=namespace, booted=booted, boot=boot, host=settings.host, machine=machine,
             due=due)
