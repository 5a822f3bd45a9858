"""Workers: processes on any machine that take queued runs whose labels they have from a
PostgreSQL store, run them under a renewed lease and ship their output (docs/workers.md)."""
