"""The control endpoint: the RPyC service and its client (the only importers of rpyc), the
live API it exposes as plain data, and Prometheus metrics."""
