# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
STAMP := $(VENV)/.synced

.PHONY: run test test-cluster faketime test-unit test-integration test-faults test-pythons test-browser chromium containers lint bench setup clean help-snapshot

# uv first (from PyPI, no other network needed), then the locked environment.
$(UV):
	$(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv

# Byte-compiled up front: where PYTHONDONTWRITEBYTECODE is set, every start would
# otherwise compile sqlalchemy & co. again (seconds instead of milliseconds).
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --frozen --compile-bytecode 2>/dev/null || $(UV) sync --quiet --compile-bytecode
	$(VENV)/bin/python -m compileall -q supertask
	@touch $(STAMP)

setup: $(STAMP)

## Run the example timetable (Ctrl-C stops it); its state and SQLite store stay in ./state,
## not in your own state folder (~/.local/state/supertask).
run: $(STAMP)
	SUPERTASK_HOME=$(CURDIR)/state $(VENV)/bin/supertask run --file timetable.yaml

## Unit and integration tests (PostgreSQL tests use a database of their own per run;
## container tests use podman, which `containers` installs and configures first).
test: $(STAMP) containers
	$(VENV)/bin/pytest -q -p no:cacheprovider --ignore=tests/browser --ignore=tests/cluster

## Several schedulers on one store (tests/cluster: real processes, each its own state folder,
## on PostgreSQL and SQLite): heartbeats, takeover, live changes and policies across hosts,
## the chaos test (kill -9, SIGSTOP, a cut network), pruning, a host's clock 5 s ahead
## (~6 min, leases take their time). .ci/run runs it after `make test`.
test-cluster: $(STAMP) faketime
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/cluster

## libfaketime (Debian's faketime package, installed when missing and apt-get can), for the
## test of a host whose clock is off; without it that test skips, saying why.
faketime:
	@[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime) >/dev/null 2>&1; } || \
		echo "faketime: not installed; the clock skew test will skip"

## The dashboard in a real browser: Playwright driving Debian's chromium (installed when
## missing and apt-get can; Playwright's own browser download is not used). Without
## chromium the tests skip, saying why. SUPERTASK_SCREENSHOTS=docs/images refreshes the
## screenshots docs/dashboard.md shows.
test-browser: $(STAMP) chromium
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/browser

chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
		echo "chromium: not installed; the browser tests will skip"

## podman, runc and a local busybox image for the container tests (Debian's packages,
## installed when missing; without them those tests skip, saying why).
containers:
	@tests/containers/podman.sh || echo "containers: not ready; the container tests will skip"

## The unit tests and a scheduler smoke test on each Python the package claims
## (3.10-3.13, each found in ~/.pyenv/versions or on PATH; one missing is skipped).
test-pythons: | $(UV)
	UV=$(UV) .ci/test-pythons

test-unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

## The fault suite alone (a full disk, a database refused and cut off, hostile folders and
## input; ~5 min), then its figures as the table docs/operations.md carries (bench/faults.py).
## Its tests also run in `make test`; mounting the small disk needs root (else they skip).
test-faults: $(STAMP)
	$(VENV)/bin/python bench/faults.py

## supertask/cli/helptext.py: the `supertask --help` printed without typer, again from typer
## (after changing a command's name or summary; tests/unit/test_entry.py says when).
help-snapshot: $(STAMP)
	$(VENV)/bin/python -m supertask.cli.helptext

lint: $(STAMP)
	$(VENV)/bin/ruff check supertask tests
	$(VENV)/bin/mypy supertask

# The original supertask from PyPI, a peer in the benchmarks: its own venv, never a dependency.
ORIGINAL := bench/venv-supertask-0.1.1/bin/supertask
$(ORIGINAL): | $(UV)
	$(UV) venv -q --python $(PYTHON) bench/venv-supertask-0.1.1
	$(UV) pip install -q --python bench/venv-supertask-0.1.1/bin/python "supertask==0.1.1" "psycopg[binary]"

# `make bench BASELINE=a5753cf` measures that commit's supertask too (a worktree and venv under
# bench/baseline-*/), turn by turn with this tree's: before/after against the run-to-run noise.
# BENCH_ARGS passes more options, e.g. BENCH_ARGS="--quick" or "--only lateness,launch,startup";
# "--only cluster" measures 3 hosts on one PostgreSQL (bench/cluster.py, ~15 min), "--only web" the dashboard.
bench: $(STAMP) $(ORIGINAL)
	UV=$(UV) $(VENV)/bin/python bench/run.py $(if $(BASELINE),--baseline $(BASELINE)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache
