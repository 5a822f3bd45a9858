"""A store of schema version 1 (before host rows) is brought up to date (the current version) when
opened: its runs kept, a run it left running taken for lost at the next start on its
host, as crash recovery always did; `doctor` only reports it."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.conftest import Cli, wait_until


def _make_version_1(url: str) -> None:
    """What a supertask before host rows left: no hosts table, no runs.instance, version 1,
    and a run it had running when it was killed."""
    from supertask.store.tables import make_engine

    _make_version_4(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE supertask_hosts"))
        conn.execute(sa.text("DROP TABLE supertask_tokens"))
        conn.execute(sa.text("DROP TABLE supertask_audit"))
        conn.execute(sa.text("ALTER TABLE supertask_runs DROP COLUMN instance"))
        conn.execute(sa.text("DROP INDEX supertask_jobs_by_revision"))
        conn.execute(sa.text("ALTER TABLE supertask_jobs DROP COLUMN revision"))
        conn.execute(sa.text("ALTER TABLE supertask_namespaces DROP COLUMN revision"))
        conn.execute(sa.text("UPDATE supertask_meta SET value = '1' WHERE key = 'schema_version'"))
        conn.execute(sa.text(
            "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, started, status, host) "
            "VALUES ('old', 'long', 1, 'schedule', '2026-12-01 00:00:00', '2026-12-01 00:00:00', 'running', :host)"),
            {"host": __import__("os").uname().nodename})
    engine.dispose()


def _make_version_4(url: str) -> None:
    """What a supertask before workers left: no workers or log chunks tables, no run
    columns for workers, no namespace weights, version 4."""
    from supertask.store.tables import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX supertask_runs_by_status_time"))  # version 6's
        conn.execute(sa.text("DROP INDEX supertask_runs_by_namespace"))
        conn.execute(sa.text("DROP TABLE supertask_workers"))
        conn.execute(sa.text("DROP TABLE supertask_log_chunks"))
        for column in ("labels", "worker", "lease_until", "priority"):
            conn.execute(sa.text(f"ALTER TABLE supertask_runs DROP COLUMN {column}"))
        for column in ("weight", "max_running"):
            conn.execute(sa.text(f"ALTER TABLE supertask_namespaces DROP COLUMN {column}"))
        conn.execute(sa.text("UPDATE supertask_meta SET value = '4' WHERE key = 'schema_version'"))
    engine.dispose()


def test_a_version_4_store_gets_the_workers_tables_and_columns(store_cli: Cli) -> None:
    assert store_cli("run", "--ns", "old", "--", "cmd:echo before").returncode == 0
    url = store_cli.env["SUPERTASK_STORE"]
    _make_version_4(url)
    runs = store_cli.json("history", "--ns", "old")  # opening it migrates it
    assert [(r["job"], r["status"], r["labels"], r["worker"], r["priority"]) for r in runs] == [
        ("echo-before", "succeeded", None, None, 0)]
    from supertask.store.tables import SCHEMA_VERSION, make_engine, schema_version

    engine = make_engine(url)
    assert schema_version(engine, url) == SCHEMA_VERSION >= 5
    inspected = sa.inspect(engine)
    assert {"supertask_workers", "supertask_log_chunks"} <= set(inspected.get_table_names())
    assert {"labels", "worker", "lease_until", "priority"} <= {c["name"] for c in inspected.get_columns("supertask_runs")}
    assert {"weight", "max_running"} <= {c["name"] for c in inspected.get_columns("supertask_namespaces")}
    assert {"supertask_runs_by_status_time", "supertask_runs_by_namespace"} <= {  # version 6
        i["name"] for i in inspected.get_indexes("supertask_runs")}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT weight, max_running FROM supertask_namespaces WHERE name = 'old'")
                            ).one() == (1.0, None)
    assert store_cli("run", "--ns", "old", "--", "cmd:echo after").returncode == 0


def test_a_version_1_store_is_migrated_and_its_left_over_run_is_lost(store_cli: Cli, tmp_path: Path) -> None:
    assert store_cli("run", "--ns", "old", "--", "cmd:true").returncode == 0  # a store with this schema
    url = store_cli.env["SUPERTASK_STORE"]
    _make_version_1(url)
    doctor = store_cli("doctor", "--json")
    assert "schema version 1" in doctor.stdout, doctor.stdout + doctor.stderr
    runs = store_cli.json("history", "--ns", "old")
    assert sorted((r["job"], r["status"], r["instance"]) for r in runs) == [
        ("long", "running", None), ("true", "succeeded", None)]
    from supertask.store.tables import SCHEMA_VERSION, make_engine, schema_version

    assert SCHEMA_VERSION >= 4  # the tokens and audit tables made on the way
    assert schema_version(make_engine(url), url) == SCHEMA_VERSION
    assert {"supertask_tokens", "supertask_audit"} <= set(sa.inspect(make_engine(url)).get_table_names())
    (tmp_path / "work" / "supertask.yaml").write_text("namespace: old\njobs:\n  - {name: long, when: '@yearly', "
                                                      "run: 'cmd:true'}\n")
    sched = store_cli.start("--heartbeat", "1s", "--lease", "4s", "--grace", "1s")
    try:
        lost = sched.wait_event("run lost", job="long", timeout=60)
        assert "before host rows were kept" in lost["message"]
        wait_until(lambda: store_cli.json("hosts")[0]["up"], 30, what="the host row")
    finally:
        sched.stop()
