# backorder: build, test and demo on a developer/CI machine or a fresh Debian 12.
#
#   make demo           the main job: toolchain + NATS + PostgreSQL, release build, scripts/demo.sh
#   make test           toolchain + NATS + PostgreSQL, then the whole workspace's tests
#   make test-faults    the fault tests (kill -9 of services and NATS, PostgreSQL outages; minutes)
#   make test-faults-bugs  the fault tests that show known bugs (they fail until fixed)
#   make bench          toolchain + NATS + PostgreSQL, release build, target/release/backorder-perf $(BENCH_ARGS)
#                       (baselines, the services end to end, targets; docs/performance.md; BENCH_ARGS=--quick)
#   make build          cargo build --release --bins
#   make services-up    start the four services in the background (.local/run/*.log, *.pid)
#   make services-down  stop them (SIGTERM, then wait)
#   make services-status
#   make fmt            cargo fmt --all (rewrite);  make fmt-check: cargo fmt --all -- --check
#   make lint           fmt-check + cargo clippy --workspace --all-targets -- -D warnings
#   make infra          just ensure NATS and PostgreSQL and print their URLs
#   make stop-infra     stop the NATS server that scripts/ensure-nats.sh started (if any)
#   make cluster-up     a three-node JetStream cluster on loopback (scripts/nats-cluster.sh; prints its NATS_URL)
#   make cluster-down   stop it (its stores stay in .local/nats-cluster/); make cluster-status
#   make fuzz           every fuzz target for FUZZ_RUNS (1,000,000) executions (cargo fuzz, fuzz/)
#   make fuzz-smoke     every fuzz target for FUZZ_SMOKE_SECS (10) seconds, and its reproducers; fails on a crash
#
# NATS_URL / DATABASE_URL from the environment are honoured as-is (see the
# scripts). Otherwise NATS is Debian's on 4222 when >= 2.10, else our own
# nats-server 2.15.1 on 127.0.0.1:$(BO_NATS_PORT, default 4333); PostgreSQL is
# postgres://postgres:postgres@127.0.0.1:5432.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := demo

export PATH := $(HOME)/.cargo/bin:$(PATH):/usr/lib/rustup/bin

CARGO ?= cargo
BO_PREFIX ?= bo
# Tests are mostly I/O bound (NATS, PostgreSQL); 4 threads on 2 cores.
TEST_THREADS ?= 4

.PHONY: help demo test test-faults test-faults-bugs bench build build-debug services-up services-down services-status \
        fmt fmt-check lint infra stop-infra cluster-up cluster-down cluster-status fuzz fuzz-smoke fuzz-build

help:
	@sed -n '2,25p' Makefile | sed 's/^# \{0,1\}//'

demo:
	@scripts/ensure-rust.sh
	scripts/ensure-nats.sh >/dev/null
	scripts/ensure-postgres.sh >/dev/null
	echo "+ $(CARGO) build --release --workspace --bins" >&2
	$(CARGO) build --release --workspace --bins
	scripts/demo.sh

test:
	@scripts/ensure-rust.sh
	if [[ -z "$${NATS_URL:-}" ]]; then
		# Our own secured server: the tests connect as admin, each service they start as its own role.
		NATS_CREDS="$${NATS_CREDS:-$$PWD/.local/nats/admin.creds}"
		export NATS_CREDS
	fi
	NATS_URL="$$(scripts/ensure-nats.sh | tail -n1)"
	if [[ -n "$${DATABASE_URL:-}" ]]; then
		# Given by the caller: used as-is.
		DATABASE_URL="$$(scripts/ensure-postgres.sh | tail -n1)"
	else
		# #[sqlx::test] needs DATABASE_URL to name an existing database; it
		# creates its own per-test databases from there.
		base="$$(scripts/ensure-postgres.sh | tail -n1)"
		has_test() { [[ "$$(psql -X -tA "$$base/postgres" -c "select 1 from pg_database where datname = 'test'")" == 1 ]]; }
		if ! has_test; then
			echo "creating database test" >&2
			psql -X -q "$$base/postgres" -c 'create database test' || has_test
		fi
		DATABASE_URL="$$base/test"
	fi
	export NATS_URL DATABASE_URL
	# The notifier's SMTP tests run a real local SMTP server (Python's aiosmtpd).
	BO_SMTP_TEST_PYTHON="$$(scripts/ensure-smtp-test.sh | tail -n1)"
	export BO_SMTP_TEST_PYTHON
	# The console's browser test: Debian's chromium and playwright-core from npm (tests/browser).
	scripts/ensure-chromium.sh --node >/dev/null
	echo "NATS_URL=$$NATS_URL NATS_CREDS=$${NATS_CREDS:-} DATABASE_URL=$$DATABASE_URL" >&2
	echo "+ $(CARGO) build --workspace --bins" >&2
	$(CARGO) build --workspace --bins
	if $(CARGO) nextest --version >/dev/null 2>&1; then
		echo "+ $(CARGO) nextest run --workspace --no-fail-fast --test-threads $(TEST_THREADS)" >&2
		$(CARGO) nextest run --workspace --no-fail-fast --test-threads $(TEST_THREADS)
	else
		echo "+ $(CARGO) test --workspace --no-fail-fast -- --test-threads $(TEST_THREADS)" >&2
		$(CARGO) test --workspace --no-fail-fast -- --test-threads $(TEST_THREADS)
	fi

# The fault tests (tests/e2e/tests/faults.rs, ignored in `make test`) run a NATS server and a PostgreSQL instance
# of their own (nats-server >= 2.10 as the script installs it, initdb/pg_ctl) and kill, stop and restart them
# and the services. `bug_*` tests show known, reported bugs and fail until they are fixed: `make
# test-faults-bugs` runs them.
FAULT_THREADS ?= 2

test-faults: FAULT_FILTER = not test(/^bug_/)
test-faults: FAULT_SKIP = --skip bug_
test-faults-bugs: FAULT_FILTER = test(/^bug_/)
test-faults-bugs: FAULT_SKIP = bug_
test-faults test-faults-bugs:
	@scripts/ensure-rust.sh
	scripts/ensure-nats.sh >/dev/null
	scripts/ensure-postgres.sh >/dev/null
	echo "+ $(CARGO) build --workspace --bins" >&2
	$(CARGO) build --workspace --bins
	if $(CARGO) nextest --version >/dev/null 2>&1; then
		echo "+ $(CARGO) nextest run -p backorder-e2e --test faults --run-ignored only -E '$(FAULT_FILTER)'" >&2
		$(CARGO) nextest run -p backorder-e2e --test faults --run-ignored only -E '$(FAULT_FILTER)' \
			--no-fail-fast --test-threads $(FAULT_THREADS) --success-output final
	else
		echo "+ $(CARGO) test -p backorder-e2e --test faults -- --ignored $(FAULT_SKIP)" >&2
		$(CARGO) test -p backorder-e2e --test faults --no-fail-fast -- --ignored $(FAULT_SKIP) \
			--test-threads $(FAULT_THREADS) --nocapture
	fi

# The end-to-end benchmark (tests/demo/src/bin/backorder-perf.rs, docs/performance.md) on the NATS server and
# PostgreSQL of `make test`, as the admin user when it is our own server; BENCH_ARGS, e.g. --quick or
# --orders 20000, go to it.
BENCH_ARGS ?=

bench:
	@scripts/ensure-rust.sh
	if [[ -z "$${NATS_URL:-}" ]]; then
		NATS_CREDS="$${NATS_CREDS:-$$PWD/.local/nats/admin.creds}"
		export NATS_CREDS
	fi
	NATS_URL="$$(scripts/ensure-nats.sh | tail -n1)"
	if [[ -n "$${DATABASE_URL:-}" ]]; then
		DATABASE_URL="$$(scripts/ensure-postgres.sh | tail -n1)"
	else
		# Only the server matters: the bench creates and drops databases of its own.
		DATABASE_URL="$$(scripts/ensure-postgres.sh | tail -n1)/postgres"
	fi
	export NATS_URL DATABASE_URL
	echo "NATS_URL=$$NATS_URL NATS_CREDS=$${NATS_CREDS:-} DATABASE_URL=$$DATABASE_URL" >&2
	echo "+ $(CARGO) build --release --workspace --bins" >&2
	$(CARGO) build --release --workspace --bins
	echo "+ target/release/backorder-perf $(BENCH_ARGS)" >&2
	target/release/backorder-perf $(BENCH_ARGS)

build:
	@scripts/ensure-rust.sh
	$(CARGO) build --release --workspace --bins

build-debug:
	@scripts/ensure-rust.sh
	$(CARGO) build --workspace --bins

services-up: build
	@BO_PREFIX="$(BO_PREFIX)" scripts/services.sh up

services-down:
	@scripts/services.sh down

services-status:
	@scripts/services.sh status

fmt:
	@$(CARGO) fmt --all

fmt-check:
	@$(CARGO) fmt --all -- --check

lint: fmt-check
	@$(CARGO) clippy --workspace --all-targets -- -D warnings

infra:
	@echo "NATS_URL=$$(scripts/ensure-nats.sh | tail -n1)"
	if [[ -z "$${NATS_URL:-}" ]]; then echo "NATS credentials (prefix bo, any prefix): $$PWD/.local/nats/<role>.creds"; fi
	echo "PostgreSQL: $$(scripts/ensure-postgres.sh | tail -n1)"

stop-infra:
	@scripts/stop-nats.sh

cluster-up:
	@scripts/nats-cluster.sh up

cluster-down:
	@scripts/nats-cluster.sh down

cluster-status:
	@scripts/nats-cluster.sh status

# Fuzzing (fuzz/, its own workspace; docs/operations.md, "Fuzzing"). cargo fuzz needs nightly features:
# RUSTC_BOOTSTRAP=1 lets the stable toolchain build it. No sanitizer: the code is safe Rust, and panics
# (overflow checks and debug assertions are on) are what the targets look for; FUZZ_BUILD_FLAGS="-s address"
# brings AddressSanitizer back. Each target runs over its corpus (fuzz/corpus/<t>, seeds committed as seed-*)
# and its reproducers (fuzz/artifacts/<t>); an input slower than FUZZ_TIMEOUT seconds counts as a crash.
FUZZ_TARGETS ?= order_intake allocation_command replenishment_event replenishment_policy_file \
                notifier_event notifier_preferences runtime_control
FUZZ_BUILD_FLAGS ?= -s none --codegen-units 16
FUZZ_RUNS ?= 1000000
FUZZ_SMOKE_SECS ?= 10
FUZZ_TIMEOUT ?= 10

fuzz-build:
	@scripts/ensure-cargo-fuzz.sh
	cd fuzz
	echo "+ cargo fuzz build $(FUZZ_BUILD_FLAGS)" >&2
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build $(FUZZ_BUILD_FLAGS)

# $(1): the libFuzzer options of the run. Every target runs; the crashed ones are listed at the end.
define fuzz_each
	cd fuzz
	failed=()
	for t in $(FUZZ_TARGETS); do
		mkdir -p corpus/$$t artifacts/$$t
		echo "+ cargo fuzz run $$t -- $(1)" >&2
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $(FUZZ_BUILD_FLAGS) $$t corpus/$$t artifacts/$$t -- \
			$(1) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 || failed+=("$$t")
	done
	if (( $${#failed[@]} )); then
		echo "fuzz: crashes in $${failed[*]} (reproducers in fuzz/artifacts/<target>/)" >&2
		exit 1
	fi
endef

fuzz: fuzz-build
	$(call fuzz_each,-runs=$(FUZZ_RUNS))

fuzz-smoke: fuzz-build
	$(call fuzz_each,-max_total_time=$(FUZZ_SMOKE_SECS))
