"""`when:` text -> triggers. Cron's meaning, DST and interval alignment are stated here only."""
