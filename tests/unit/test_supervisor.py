"""The supervisor: parts started in order, stopped and joined in reverse, their threads
(short-lived ones too) joined before the next part stops, and nothing queued dropped."""

from __future__ import annotations

import queue
import threading

import pytest

from supertask.runs import notify
from supertask.scheduler import supervisor as sup_module
from supertask.scheduler.supervisor import Supervisor
from supertask.threads import Threads


class FakePart:
    """A part with a thread of its own that runs until the part is stopped."""

    def __init__(self, sup: Supervisor, name: str, log: list[str]):
        self.name, self.log, self.spawn = name, log, sup.spawner(name)
        self.stopping = threading.Event()
        sup.add(name, self.start, self.stop)

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        self.spawn(f"{self.name}-loop", self.loop)

    def loop(self) -> None:
        self.stopping.wait()
        self.log.append(f"ended {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        self.stopping.set()


def test_parts_start_in_order_and_stop_in_reverse_each_joined_before_the_next():
    sup, log = Supervisor(), []
    for name in ("a", "b", "c"):
        FakePart(sup, name, log)
    sup.start()
    assert sup.running == ["a", "b", "c"]
    assert log == ["start a", "start b", "start c"]
    sup.stop()
    assert log[3:] == ["stop c", "ended c", "stop b", "ended b", "stop a", "ended a"]
    assert sup.running == [] and sup.left == []


def test_a_thread_a_part_starts_while_it_stops_is_joined_before_the_next_part_stops():
    """As the run pool's carry-on threads when it no longer takes work, or the follower's
    threads that end a process group."""
    sup, log = Supervisor(), []
    FakePart(sup, "below", log)
    late = sup.spawner("pool")
    release = threading.Event()

    def carry_on() -> None:
        release.wait()
        log.append("carried on")

    def stop_pool() -> None:
        late("supertask-run-late", carry_on)
        release.set()

    sup.add("pool", stop=stop_pool)
    sup.start()
    sup.stop()
    assert log.index("carried on") < log.index("stop below")


def test_a_failed_start_stops_the_parts_started_and_raises():
    sup, log = Supervisor(), []
    FakePart(sup, "a", log)

    def broken() -> None:
        raise RuntimeError("no")

    sup.add("b", broken)
    FakePart(sup, "c", log)
    with pytest.raises(RuntimeError):
        sup.start()
    assert log == ["start a", "stop a", "ended a"]


def test_a_write_queued_just_before_the_stop_is_flushed_not_cancelled():
    """A writer part (the finisher, the store) below a part that hands it work: what the
    upper part still holds at its stop, and what was queued just before, is written."""
    sup, written = Supervisor(), []
    writes: queue.Queue[str | None] = queue.Queue()
    gate = threading.Event()  # the writer is busy: writes wait in its queue

    def writer() -> None:
        gate.wait()
        while (item := writes.get()) is not None:
            written.append(item)

    spawn = sup.spawner("writer")
    sup.add("writer", lambda: spawn("writer", writer), lambda: (writes.put(None), gate.set()))
    held = ["held by the runs"]
    sup.add("runs", stop=lambda: [writes.put(item) for item in held])
    sup.start()
    writes.put("queued just before the stop")
    sup.stop()
    assert written == ["queued just before the stop", "held by the runs"]


def test_the_notification_outbox_sends_what_is_queued_at_the_stop():
    sup, sent = Supervisor(), []
    outbox = notify.Outbox(sup.spawner("notifications"))
    gate = threading.Event()
    sup.add("notifications", stop=lambda: outbox.close(timeout=30))
    sup.add("runs", stop=gate.set)
    sup.start()
    outbox.put(gate.wait)  # the outbox is busy until the runs stop
    outbox.put(sent.append, "queued just before the stop")
    sup.stop()
    assert sent == ["queued just before the stop"]


def test_a_thread_that_does_not_stop_is_named_and_the_stop_goes_on(monkeypatch):
    monkeypatch.setattr(sup_module, "JOIN_TIMEOUT", 0.05)
    sup, release = Supervisor(), threading.Event()
    spawn = sup.spawner("stuck")
    sup.add("stuck", lambda: spawn("supertask-stuck", release.wait))
    sup.add("after")
    sup.start()
    sup.stop()
    assert sup.left == ["supertask-stuck"]
    release.set()


def test_threads_forget_ended_ones_and_join_the_rest():
    threads, order = Threads("t"), []
    threads.spawn("quick", lambda: None).join(5)
    gates = [threading.Event() for _ in range(3)]

    def wait(i: int) -> None:
        gates[i].wait()
        order.append(i)

    for i in range(3):
        threads.spawn(f"w{i}", wait, i)
    assert [t.name for t in threads.alive()] == ["w0", "w1", "w2"]
    for gate in gates:
        gate.set()
    assert threads.join(5) == [] and threads.alive() == []
    assert sorted(order) == [0, 1, 2]
