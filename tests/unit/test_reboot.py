"""@reboot's boot record (supertask.scheduler.reboot): once per namespace, machine and boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from supertask.scheduler.reboot import (
    BOOT_FOLDER,
    TEST_MACHINE,
    boot_id,
    boot_key,
    boot_time,
    booted_since_last_start,
    machine_id,
)
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


def test_machines_sharing_a_host_name_each_see_their_own_boots() -> None:
    """Keyed by the machine id: two machines named alike no longer take each other's boot
    for a new one of their own (by name, each restart of one fired after the other's)."""
    store = open_store("memory://")
    a, b = "a" * 32, "b" * 32
    steps = [  # (machine, boot, booted?)
        (a, "boot-a1", True),
        (b, "boot-b1", True),   # the other machine's first boot
        (a, "boot-a1", False),  # a restart on machine a: by host name this fired again
        (b, "boot-b1", False),
        (a, "boot-a2", True),   # machine a reboots
        (b, "boot-b1", False),
        (a, "boot-a2", False),
    ]
    assert [booted_since_last_start(store, "ns", "web", boot, machine=m) for m, boot, _ in steps] == \
        [s[2] for s in steps]


def test_the_upgrade_from_the_host_name_key_fires_nothing_again() -> None:
    store = open_store("memory://")
    machine = "c" * 32
    assert booted_since_last_start(store, "ns", "web", "boot-1")  # a development version, by host name
    assert not booted_since_last_start(store, "ns", "web", "boot-1", machine=machine)  # upgraded, same boot
    assert not booted_since_last_start(store, "ns", "web", "boot-1", machine=machine)
    assert booted_since_last_start(store, "ns", "web", "boot-2", machine=machine)  # the next boot fires
    # the host name's key holding another boot (a reboot since, or a namesake's): a new boot
    assert booted_since_last_start(store, "other", "web", "boot-1")
    assert booted_since_last_start(store, "other", "web", "boot-2", machine=machine)


def test_the_upgrade_from_the_state_folder_marker_fires_nothing_again(tmp_path: Path) -> None:
    (tmp_path / BOOT_FOLDER).mkdir()
    (tmp_path / BOOT_FOLDER / "ns").write_text(str(boot_time()))
    store = open_store("memory://")
    assert not booted_since_last_start(store, "ns", "web", "boot-1", tmp_path, machine="d" * 32)
    assert booted_since_last_start(store, "ns", "web", "boot-2", tmp_path, machine="d" * 32)


def test_the_machine_id_is_read_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_MACHINE, str(tmp_path))
    assert machine_id() is None  # no file: the host name keys the boot
    for text, expected in (("uninitialized\n", None), ("", None), ("  3D1219C7C4C5404AAA1F6D2A48ADFDA4\n",
                                                                    "3d1219c7c4c5404aaa1f6d2a48adfda4")):
        (tmp_path / "machine-id").write_text(text)
        assert machine_id() == expected
    (tmp_path / "boot_id").write_text("fake-boot\n")
    assert boot_id() == "fake-boot"
    assert boot_key("ns", "web", machine_id()) != boot_key("ns", "web") == boot_key("ns", "web", None)
