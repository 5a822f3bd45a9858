"""The dashboard and HTTP API (docs/dashboard.md): a Starlette app on uvicorn over one store, imported only by the commands that serve it (`supertask web`, `supertask run --http`)."""
