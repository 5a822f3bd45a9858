"""One run's life: begin (claim the row), follow the child, end (record, retry, notify); its log."""
