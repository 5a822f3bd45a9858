"""Stores: the same behaviour on SQLite files and on the real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SUPERTASK, Cli, wait_until


def test_store_round_trip(store_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "fires"
    (store_cli.cwd / "supertask.yaml").write_text(f"""
namespace: shared
jobs:
  - {{name: tick, when: "* * * * * *", run: "cmd:echo $SUPERTASK_SCHEDULED >> {out}"}}
  - {{name: daily, when: "@daily", timezone: UTC, run: "cmd:true", description: once a day}}
""")
    sched = store_cli.start()
    try:
        wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, what="two fires")
    finally:
        assert sched.stop() == 0
    # with no scheduler running, the store answers
    namespaces = store_cli.json("list-namespaces")
    assert [n["name"] for n in namespaces] == ["shared"]
    ns = namespaces[0]
    assert ns["source"] == str(store_cli.cwd / "supertask.yaml") and ns["jobs"] == 2
    for key in ("host", "user", "created", "updated"):
        assert ns[key]
    jobs = {j["name"]: j for j in store_cli.json("list-jobs", "--ns", "shared")}
    assert jobs["daily"]["next_fire"].endswith("T00:00:00+00:00")
    for key in ("namespace", "name", "when", "run", "enabled", "next_fire"):
        assert key in jobs["tick"]
    typo = store_cli("list-jobs", "--ns", "shraed")  # a typo is reported, not an empty list
    assert typo.returncode == 2 and "'shraed'" in typo.stderr and "shared" in typo.stderr
    assert store_cli("history", "--ns", "shraed").returncode == 2
    runs = store_cli.json("history", "tick", "--limit", "100")
    fired = out.read_text().split()
    assert len(runs) == len(fired) and len(set(fired)) == len(fired)
    assert all(r["status"] == "succeeded" and r["host"] for r in runs)
    # a one-liner records its run in the same store
    assert store_cli("run", "--", "cmd:echo via store").stdout == "via store\n"
    assert store_cli.json("history", "--all", "--limit", "1")[0]["log_tail"] == "via store"


def test_failed_filter_and_limit(store_cli: Cli) -> None:
    for code in (0, 1, 0, 2):
        store_cli("run", "--name", "mixed", "--", f"cmd:exit {code}")
    failed = store_cli.json("history", "mixed", "--failed")
    assert sorted(r["exit_code"] for r in failed) == [1, 2]
    assert len(store_cli.json("history", "--limit", "3")) == 3


def test_memory_store_keeps_nothing(cli: Cli) -> None:
    assert cli("run", "--store", "memory://", "--", "cmd:echo gone").stdout == "gone\n"
    assert cli.json("history", "--store", "memory://") == []
    assert not (cli.home / "supertask.db").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nosuchdb://x", "cannot use store URL"),
        ("not a url", "is not a database URL"),
        ("postgresql://nobody@127.0.0.1:1/none", "is unreachable: connection failed"),
    ],
)
def test_bad_store_url_is_a_clear_error(cli: Cli, url: str, says: str) -> None:
    proc = cli("list-jobs", "--store", url)
    assert proc.returncode == 2
    assert says in proc.stderr and "Traceback" not in proc.stderr


def test_a_mistyped_sqlite_store_is_reported_not_made(cli: Cli, tmp_path: Path) -> None:
    typo = tmp_path / "supertsak.db"
    for command in (["history"], ["list-jobs"], ["list-namespaces"], ["logs", "1"]):
        proc = cli(*command, "--store", f"sqlite:///{typo}")
        assert proc.returncode == 2, command
        assert f"no store at {typo}: the file does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not typo.exists()
    assert cli("run", "--store", f"sqlite:///{typo}", "--", "cmd:true").returncode == 0  # a run makes it
    assert [r["status"] for r in cli.json("history", "--store", f"sqlite:///{typo}")] == ["succeeded"]


def test_a_database_without_supertask_tables_is_reported_not_made(store_cli: Cli) -> None:
    """A reading or maintenance command pointed at a database (or SQLite file) that holds
    no supertask tables says so and exits 2: a wrong URL gets no tables made in it."""
    import sqlalchemy as sa

    url = _fresh(store_cli.env["SUPERTASK_STORE"])
    if url.startswith("sqlite:///"):
        sa.create_engine(url).connect().close()  # an empty SQLite file: there, but no tables
    for command in (["history"], ["prune", "--keep", "0"], ["hosts"], ["workers"], ["audit"], ["status"]):
        proc = store_cli(*command, "--store", url)
        assert proc.returncode == 2, (command, proc.stderr)
        assert "no supertask store at" in proc.stderr and "Traceback" not in proc.stderr
    assert sa.inspect(sa.create_engine(url)).get_table_names() == []
    assert store_cli("run", "--store", url, "--", "cmd:true").returncode == 0  # a run makes them
    assert [r["status"] for r in store_cli.json("history", "--store", url)] == ["succeeded"]


def test_reading_an_empty_state_folder_names_it_and_makes_nothing(cli: Cli) -> None:
    """Reading commands with an empty SUPERTASK_HOME printed an empty table, exited 0 and
    left a new supertask.db behind (issue 14 point 2): they exit 2 naming the folder
    they looked in and where a service's store usually is, and create nothing (doctor
    too, after printing its checks: test_doctor_creates_nothing...)."""
    for command in (["history"], ["list-jobs"], ["list-namespaces"], ["prune", "--keep", "1"], ["doctor"]):
        proc = cli(*command)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        said = proc.stdout + proc.stderr
        assert f"no store in the state folder {cli.home}" in said, (command, said)
        assert "/var/lib/supertask" in said and "--home" in said and "Traceback" not in said
    assert not cli.home.exists()  # no folder, no supertask.db
    assert cli("run", "--", "cmd:true").returncode == 0  # a run makes it
    assert [r["status"] for r in cli.json("history")] == ["succeeded"]


def test_default_store_lives_in_the_state_folder(cli: Cli) -> None:
    cli("run", "--", "cmd:echo hello")
    assert (cli.home / "supertask.db").is_file()
    log_files = list((cli.home / "logs").rglob("*.log"))
    assert len(log_files) == 1
    assert log_files[0].read_text().endswith(" stdout hello\n")


def test_a_run_that_prints_nothing_has_no_log_file(cli: Cli) -> None:
    assert cli("run", "--", "cmd:true").returncode == 0
    assert cli("run", "--", "cmd:exit 4").returncode == 4
    quiet, failed = sorted(cli.json("history"), key=lambda r: r["id"])
    assert (quiet["status"], quiet["log_path"], quiet["log_tail"]) == ("succeeded", None, "")
    assert (failed["status"], failed["exit_code"], failed["log_path"]) == ("failed", 4, None)
    assert not list((cli.home / "logs").rglob("*.log"))
    shown = cli("logs", str(quiet["id"]))
    assert (shown.returncode, shown.stdout) == (0, "")


def test_processes_opening_a_new_store_at_once_all_succeed(store_cli: Cli) -> None:
    """Two runs (a scheduler and a one-shot, or two of anything that writes) meeting a
    store that does not exist yet: both create the schema, neither fails ("table
    already exists"). A reading command makes no tables (test_a_mistyped_store_is_reported_not_made)."""
    import subprocess

    for _ in range(3):
        commands = [["run", "--", "cmd:true"]] * 2 + [["run", "--", "cmd:echo x"]] * 2
        procs = [subprocess.Popen([*SUPERTASK, *command], cwd=store_cli.cwd, env=store_cli.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for command in commands]
        results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
        assert [code for code, _ in results] == [0, 0, 0, 0], results
        store_cli.env["SUPERTASK_STORE"] = _fresh(store_cli.env["SUPERTASK_STORE"])


def _fresh(url: str) -> str:
    """The next new, empty store beside ``url``: a new SQLite file or a new PostgreSQL schema."""
    import uuid

    if url.startswith("sqlite:///"):
        return f"sqlite:///{Path(url[len('sqlite:///'):]).with_name(f'store-{uuid.uuid4().hex[:6]}.db')}"
    import psycopg

    base, _, _options = url.partition("?")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base}?options=-csearch_path%3D{schema}"


def test_a_round_of_fires_one_row_each_none_before_its_time(store_cli: Cli, tmp_path: Path) -> None:
    """Twenty jobs due each second: the scheduler claims a round's fires together and
    starts their children one after another. Every fire runs once, none before its
    time, each with its own row (started no earlier than scheduled) and its own log."""
    from datetime import datetime

    out = tmp_path / "fires"
    jobs = "".join(
        f"""
  - name: j{i}
    when: "* * * * * *"
    run: "cmd:echo \\"$SUPERTASK_RUN_ID $SUPERTASK_SCHEDULED $(date +%s.%N)\\" >> {out}{'; echo done' if i % 2 else ''}"
""" for i in range(20))
    (store_cli.cwd / "supertask.yaml").write_text(f"namespace: round\njobs:{jobs}")
    sched = store_cli.start()
    try:
        wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 60, timeout=30, what="60 fires")
    finally:
        assert sched.stop() == 0
    fires = [line.split() for line in out.read_text().splitlines()]
    rows = {r["id"]: r for r in store_cli.json("history", "--limit", "1000")}
    assert len({run_id for run_id, _, _ in fires}) == len(fires)  # one child per run
    for run_id, scheduled, at in fires:
        due = datetime.fromisoformat(scheduled).timestamp()
        assert 0 <= float(at) - due < 1.0, (scheduled, at)
        row = rows[int(run_id)]
        assert row["status"] == "succeeded" and row["scheduled"] == scheduled
        assert datetime.fromisoformat(row["started"]).timestamp() >= due - 0.001
        if int(row["job"][1:]) % 2:  # its log has what it printed
            assert Path(row["log_path"]).read_text().endswith(" stdout done\n")
        else:  # it printed nothing: no log file
            assert row["log_path"] is None
    fired = [(r["job"], r["scheduled"]) for r in rows.values() if r["status"] != "skipped"]
    assert len(fired) == len(set(fired))  # no fire twice
    seconds = {s for _, s, _ in fires}
    assert len(fires) >= 20 * (len(seconds) - 2)  # rounds are whole (first/last may be cut)


def test_claiming_a_round_at_once_takes_each_fire_once(store_url: str, tmp_path: Path) -> None:
    """``Store.claim_runs`` (the scheduler's claim of a round): one row per fire, None
    for a fire already claimed, a fire ahead of its time started at its time."""
    from datetime import datetime, timedelta, timezone

    from supertask.store.sql import SqlStore as Store

    store = Store.open(store_url)
    try:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        ahead = now + timedelta(seconds=30)
        claim = dict(namespace="ns", attempt=1, reason="schedule", host="h", log_dir=tmp_path / "logs")
        taken = store.claim_run(job="a", scheduled=now, **claim)
        ids = store.claim_runs([dict(job="a", scheduled=now, **claim), dict(job="b", scheduled=now, **claim),
                                dict(job="c", scheduled=ahead, **claim)])
        assert taken is not None and ids[0] is None and None not in ids[1:]
        b, c = store.get_run(ids[1]), store.get_run(ids[2])  # type: ignore[arg-type]
        assert (b.job, b.status, b.log_path) == ("b", "running", str(tmp_path / "logs" / "ns" / "b" / f"{ids[1]}.log"))
        assert c.started == ahead and b.started is not None and b.started < ahead
        assert len(store.history("ns", limit=10)) == 3
    finally:
        store.close()


def test_runs_read_back_carry_their_status_and_reason_as_enums(store_url: str, tmp_path: Path) -> None:
    """A run row read from either store (get_run, history, mark_runs_lost; the one-shot
    store's get_run on SQLite) has a RunStatus and a Reason, shown and sent as their words."""
    import json
    from datetime import datetime, timezone

    from supertask.model import Reason, RunStatus
    from supertask.store.lite import open_lite
    from supertask.store.sql import SqlStore as Store

    store = Store.open(store_url)
    try:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        claim = dict(namespace="ns", scheduled=now, host="h", log_dir=tmp_path / "logs")
        done = store.claim_run(job="a", attempt=2, reason=Reason.RETRY.value, **claim)
        left = store.claim_run(job="b", attempt=1, reason=Reason.CATCH_UP.value, **claim)
        assert done is not None and left is not None
        store.update_run(done, status=RunStatus.TIMED_OUT, exit_code=None, finished=now)
        got = store.get_run(done)
        assert got.status is RunStatus.TIMED_OUT and got.reason is Reason.RETRY
        assert {(r.status, r.reason) for r in store.history("ns")} == {
            (RunStatus.TIMED_OUT, Reason.RETRY), (RunStatus.RUNNING, Reason.CATCH_UP)}
        assert all(type(r.status) is RunStatus and type(r.reason) is Reason for r in store.history("ns"))
        assert json.loads(json.dumps(got.to_json()))["status"] == "timed-out"
        assert f"{got.status}|{got.reason}|{got.status:>10}" == "timed-out|retry| timed-out"
        if store_url.startswith("sqlite"):
            lite = open_lite(store_url)
            assert lite is not None
            try:
                assert lite.get_run(done) == got and lite.get_run(left).status is RunStatus.RUNNING
            finally:
                lite.close()
        [flying] = store.runs_in_flight(["ns"])
        [lost] = store.mark_runs_lost([(flying, "its scheduler is gone")])  # the rows it changed
        assert (lost.id, lost.status, lost.reason) == (left, RunStatus.LOST, Reason.CATCH_UP)
        assert type(lost.status) is RunStatus and store.get_run(left).message == "its scheduler is gone"
    finally:
        store.close()


def test_listing_fields_are_those_of_the_stored_definitions(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Store.definitions picks a listing's keys out with the database's JSON functions;
    they must be what parsing the whole definition gives."""
    from supertask.store.listing import LISTED
    from supertask.store.sql import SqlStore as Store
    from supertask.timetable.load import load_timetable

    tt = load_timetable("""
jobs:
  - {name: plain, when: "0 0 1 1 *", run: "cmd:true"}
  - {name: steps, when: "@daily", steps: [{name: a, run: "cmd:echo a"}, {name: b, run: "exec:true"}]}
  - {name: off, when: every 5m, run: "cmd:echo 'quoted' \\"and\\" [bracketed]", enabled: false}
  - {name: zoned, when: "30 2 * * *", timezone: Europe/Berlin, run: "cmd:true", description: "caf\u00e9 \u2013 nightly"}
""", "<test>")
    st = Store.open(store_url)
    try:
        st.ensure_namespace("ns", source=None, host="h", user="u")
        st.sync("ns", tt.jobs, lambda job: None)
        got = dict(st.definitions("ns"))
        for job in tt.jobs:
            full = job.to_dict()
            assert got[job.name] == {k: full[k] for k in LISTED if full.get(k) is not None}, job.name
        assert got["off"]["enabled"] is False and got["plain"]["enabled"] is True
        assert [s["run"] for s in got["steps"]["steps"]] == ["cmd:echo a", "exec:true"]
        monkeypatch.setattr(st.engine.dialect, "name", "other")  # a database without JSON functions
        assert dict(st.definitions("ns")) == got
    finally:
        st.close()


def test_postgresql_connections_have_timeouts(store_url: str) -> None:
    """A network cut must fail statements within seconds, not TCP's minutes (issue 18):
    every PostgreSQL connection has connect, keepalive, TCP and statement timeouts."""
    if not store_url.startswith("postgresql"):
        pytest.skip("about PostgreSQL")
    import sqlalchemy as sa

    from supertask.store.sql import open_store

    store = open_store(store_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1min"
            assert conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar() == "30s"
            assert conn.execute(sa.text("SHOW search_path")).scalar().startswith("t_")  # the URL's options kept
            params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert (params["connect_timeout"], params["keepalives_idle"], params["tcp_user_timeout"]) == ("5", "5", "10000")
    finally:
        store.close()


def test_schedulers_recording_the_same_meta_key_at_once_all_succeed(store_url: str) -> None:
    """Two schedulers starting at once on one store both record the timetable they
    synced under the same key (supertask.timetable.syncmark): neither fails with a
    duplicate key (a second host crashed at start with one)."""
    import threading

    from supertask.store.sql import SqlStore as Store

    stores = [Store.open(store_url) for _ in range(4)]
    errors: list[BaseException] = []
    try:
        for round_ in range(15):
            barrier = threading.Barrier(len(stores))

            def record(store: Store, value: str, barrier: threading.Barrier, key: str) -> None:
                barrier.wait()
                try:
                    store.set_meta(key, value)
                except BaseException as exc:  # noqa: BLE001 -- collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=record, args=(store, f"v{n}", barrier, f"race:{round_}")) for n, store in enumerate(stores)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not errors, errors
            assert stores[0].get_meta(f"race:{round_}") in {f"v{n}" for n in range(len(stores))}
    finally:
        for store in stores:
            store.close()
