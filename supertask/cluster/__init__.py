"""Several schedulers on one store: host rows and their heartbeats, leases, the takeover
of a dead host's runs, and the pure decisions behind them (docs/cluster.md)."""
