"""A connection of its own that LISTENs on a PostgreSQL channel (live changes, queued runs)."""

from __future__ import annotations

from typing import Any


def listen(engine: Any, channel: str) -> Any:
    """A psycopg 3 connection taken out of ``engine``'s pool (the caller closes it),
    in autocommit, listening on ``channel``; None where the driver has no notifications
    (polling alone). A store that cannot be reached raises, as any connect does."""
    pooled = engine.raw_connection()
    conn = pooled.driver_connection
    pooled.detach()  # closed by the caller, never handed back to the pool
    if not hasattr(conn, "notifies"):  # not psycopg 3
        pooled.close()
        return None
    conn.rollback()
    conn.autocommit = True
    conn.execute(f"LISTEN {channel}")
    return conn
