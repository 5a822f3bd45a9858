"""@reboot's boot record (supertask.scheduler.reboot): once per namespace, host and boot."""

from __future__ import annotations

from supertask.scheduler.reboot import boot_id, booted_since_last_start
from supertask.store.sql import open_store


def test_one_start_per_namespace_host_and_boot_sees_the_boot() -> None:
    store = open_store("memory://")
    steps = [  # (namespace, host, boot, booted?)
        ("ns", "a", "boot-1", True),   # nothing recorded: a boot
        ("ns", "a", "boot-1", False),  # the same boot again (another folder, or a restart)
        ("ns", "b", "boot-1", True),   # another host has its own boots
        ("other", "a", "boot-1", True),  # another namespace too
        ("ns", "a", "boot-2", True),   # a reboot of host a
        ("ns", "a", "boot-2", False),
        ("ns", "b", "boot-1", False),
    ]
    assert [booted_since_last_start(store, ns, host, boot) for ns, host, boot, _ in steps] == [s[3] for s in steps]


def test_the_boot_id_is_the_kernels() -> None:
    assert boot_id() == boot_id() and len(boot_id()) >= 8
