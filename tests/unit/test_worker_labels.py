"""Workers' pure parts, table-driven: labels parsed and matched, the waiting reason, the
scheduler's overlap decision for a run left to workers, the job keys, the log caps."""

from __future__ import annotations

import pytest

from supertask.errors import TimetableError
from supertask.model import Job, Overlap
from supertask.timetable.load import load_timetable
from supertask.workers.chunks import Shipment
from supertask.workers.labels import LabelError, fits, parse, text, waiting_reason
from supertask.workers.route import needs, overlap_refusal
from supertask.workers.worker import fence_after


@pytest.mark.parametrize(("written", "parsed"), [
    ("gpu=1,region=eu", {"gpu": "1", "region": "eu"}),
    (" gpu = 1 , region=eu ,", {"gpu": "1", "region": "eu"}),
    ("", {}),
    ("zone=", {"zone": ""}),
    ("k8s.io/arch=amd64", {"k8s.io/arch": "amd64"}),
])
def test_labels_parse(written: str, parsed: dict[str, str]) -> None:
    assert parse(written) == parsed


@pytest.mark.parametrize(("written", "says"), [
    ("gpu", "is not key=value"),
    ("=1", "is not a key"),
    ("g pu=1", "is not a key"),
    ("gpu=1=2", "has a comma, an equals sign or a space"),
    ("gpu=1,gpu=2", "given twice"),
])
def test_bad_labels_say_what_to_write(written: str, says: str) -> None:
    with pytest.raises(LabelError, match=says):
        parse(written)


@pytest.mark.parametrize(("needs_", "has", "fit"), [
    ({"gpu": "1"}, {"gpu": "1", "region": "eu"}, True),
    ({"gpu": "1", "region": "eu"}, {"gpu": "1"}, False),
    ({"gpu": "1"}, {"gpu": "2"}, False),
    ({}, {}, True),
    ({}, {"gpu": "1"}, True),
    ({"gpu": "1"}, {}, False),
])
def test_every_key_value_must_match(needs_: dict[str, str], has: dict[str, str], fit: bool) -> None:
    assert fits(needs_, has) is fit


def test_waiting_reason() -> None:
    assert waiting_reason({"gpu": "1"}, [{"region": "eu"}]) == "no live worker has gpu=1"
    assert waiting_reason({"gpu": "1", "a": "b"}, []) == "no live worker has a=b,gpu=1"
    assert waiting_reason({"gpu": "1"}, [{"gpu": "1"}]) is None
    assert waiting_reason({}, []).startswith("no live worker (start one")
    assert text({}) == "(none)"


def _job(**kw: object) -> Job:
    return Job(name="j", when="@daily", run="cmd:true", **kw)  # type: ignore[arg-type]


RUNNING = {"status": "running", "worker": "w1", "host": "h"}
QUEUED = {"status": "queued", "worker": None, "host": None}


@pytest.mark.parametrize(("job", "in_flight", "says"), [
    (_job(), [], None),
    (_job(), [RUNNING], "previous run still running on w1 (overlap: skip)"),
    (_job(), [QUEUED], "a run is already waiting for a worker (overlap: skip)"),
    (_job(overlap=Overlap.QUEUE), [RUNNING], None),
    (_job(overlap=Overlap.QUEUE), [RUNNING, QUEUED], "a run is already waiting for a worker (overlap: queue)"),
    (_job(overlap=Overlap.ALLOW), [RUNNING, RUNNING, QUEUED], None),
    (_job(overlap=Overlap.ALLOW, max_concurrent=2), [RUNNING], None),
    (_job(overlap=Overlap.ALLOW, max_concurrent=2), [RUNNING, QUEUED], "max_concurrent 2 runs were in flight"),
])
def test_overlap_of_a_run_left_to_workers(job: Job, in_flight: list[dict[str, object]], says: str | None) -> None:
    got = overlap_refusal(job, in_flight)
    assert got == says if says is None else (got or "").startswith(says)


def test_which_runs_go_to_workers() -> None:
    assert needs(_job(on={"gpu": "1"}), False) == {"gpu": "1"}
    assert needs(_job(), False) is None
    assert needs(_job(), True) == {}


def test_on_and_priority_in_a_timetable() -> None:
    t = load_timetable('jobs:\n  - {name: a, when: "@daily", run: "cmd:true", on: {gpu: 1}, priority: -2}\n')
    assert (dict(t.jobs[0].on), t.jobs[0].priority) == ({"gpu": "1"}, -2)
    assert Job.from_dict(t.jobs[0].to_dict()).on == {"gpu": "1"}
    plain = load_timetable('jobs:\n  - {name: a, when: "@daily", run: "cmd:true"}\n').jobs[0]
    assert "on" not in plain.to_dict() and "priority" not in plain.to_dict()  # stored jobs do not read as changed


@pytest.mark.parametrize(("value", "says"), [
    ("on: [gpu]", "jobs[0].on: expected a mapping of labels"),
    ("on: gpu", "jobs[0].on: expected a mapping of labels"),
    ('on: {"g pu": "1"}', "is not a key"),
    ("on: {gpu: }", "expected label: value pairs"),
    ("priority: high", "jobs[0].priority: expected a whole number"),
    ("priority: 1.5", "jobs[0].priority: expected a whole number"),
])
def test_bad_on_and_priority_name_file_and_line(value: str, says: str) -> None:
    with pytest.raises(TimetableError) as err:
        load_timetable(f'jobs:\n  - name: a\n    when: "@daily"\n    run: "cmd:true"\n    {value}\n', "t.yaml")
    assert "t.yaml:5:" in str(err.value) and says in str(err.value)


def test_shipment_keeps_head_and_tail_within_log_max() -> None:
    s = Shipment(7, 1000)
    for i in range(200):
        s.line("stdout", f"line {i}")
    s.close()
    chunks = s.take()
    data = "".join(d for _, _, d in chunks)
    assert all(run == 7 for run, _, _ in chunks)
    assert len(data) <= 1000 + 200 and "left out" in data
    assert data.splitlines()[0].endswith("stdout line 0") and data.splitlines()[-1].endswith("stdout line 199")
    s.sent(chunks[-1][1])
    assert s.take() == []
    assert s.tail_text.splitlines()[-1] == "line 199"


def test_unsent_chunks_are_sent_again() -> None:
    s = Shipment(1, 10_000)
    s.line("stdout", "a")
    first = s.take()
    s.line("stdout", "b")
    again = s.take()  # the first was not acknowledged: sent again, with the new one
    assert [seq for _, seq, _ in again] == [0, 1] and again[0] == first[0]


def test_fence_after_half_the_lease() -> None:
    assert fence_after(20, 5) == 10
    assert fence_after(4, 1) == 2
    assert fence_after(2, 1) == 1.5
