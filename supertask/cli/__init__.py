"""The command line: a thin typer shell around the rest. `app` holds the options;
one module per command group registers its commands on it."""
