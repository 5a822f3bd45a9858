"""The running service: APScheduler glue, its rounds, the decisions at each fire, the
components beside it (reload, control, metrics) and the order they start and stop in."""
