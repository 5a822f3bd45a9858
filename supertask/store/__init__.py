"""The store: namespaces, jobs and runs in SQL tables; SQLite and PostgreSQL behind one interface."""
