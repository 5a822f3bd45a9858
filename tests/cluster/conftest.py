"""Fixtures of the multi-scheduler suites (``make test-cluster``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import own_pg_database


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped at its end (hosts, runs and
    revisions of one test never meet another's)."""
    with own_pg_database("supertask_cluster") as url:
        yield url
