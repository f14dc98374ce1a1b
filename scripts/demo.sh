#!/usr/bin/env bash
# The demo: run the four services, the console and the demo client against
# them, from a clean slate; show the backorder desk (KPIs, worklist) with the
# operator CLI; keep everything up for the console until Ctrl-C when run from a
# terminal (BO_DEMO_EXIT=1: stop at once), and stop everything afterwards.
#
#   1. NATS and PostgreSQL via ensure-nats.sh / ensure-postgres.sh (they
#      honour NATS_URL / DATABASE_URL from the caller; only the server part of
#      DATABASE_URL is used here).
#   2. Clean slate for prefix `demo`: `backorder-demo --reset` deletes the
#      prefix's streams (DEMO_IN, DEMO_INTERNAL, DEMO_OUT, DEMO_DLQ) and exits;
#      database backorder_demo is dropped and created again.
#   3. The services start (scripts/services.sh, logs in .local/run/demo/),
#      and are stopped on exit whatever happens (trap).
#   4. target/release/backorder-demo runs and tells the story on stdout. The
#      services and the demo share a simulated clock (BO_CLOCK=simulated,
#      starting at the current hour), which the demo moves forward.
#   5. `backorder kpi` and `backorder backorders` print the desk's view; the
#      console's address and token are printed (BO_CONSOLE_ADDR, default
#      127.0.0.1:8090).
# Exit code: the demo binary's, else the desk view's (Ctrl-C while the
# console stays up does not count as a failure).
#
# Needs the release binaries: `make demo` builds them first.
set -euo pipefail
BO_SCRIPT=demo
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN_DIR="${BO_BIN_DIR:-$BO_ROOT/target/release}"
DEMO_BIN="$BIN_DIR/backorder-demo"
DEMO_DB=backorder_demo
export BO_PREFIX=demo
export BO_RUN_DIR="$BO_ROOT/.local/run/demo"
# The services run on a simulated clock that starts now: the demo moves it over <p>.ctl.clock so that a late
# supplier's week plays in seconds.
export BO_CLOCK=simulated
BO_CLOCK_START="$(date -u +%Y-%m-%dT%H:00:00Z)"
export BO_CLOCK_START
# Reorder policies from the shipped example. Shortages are gathered per supplier for five minutes of the
# simulated clock (the demo moves it), and a request nobody answers is re-raised after two days.
export BO_REORDER_POLICY_FILE="${BO_REORDER_POLICY_FILE:-$BO_ROOT/deploy/reorder-policies.toml}"
export BO_REORDER_WINDOW_SECS="${BO_REORDER_WINDOW_SECS:-300}"
export BO_REORDER_RERAISE_HOURS="${BO_REORDER_RERAISE_HOURS:-48}"
export BO_BIN_DIR="$BIN_DIR"
# Messages go out as soon as the customer event arrives, at any hour of the simulated clock (the service
# defaults coalesce for 60 s and hold SMS through the night).
export BO_NOTIFY_COALESCE_SECS=0
export BO_SMS_QUIET_HOURS=off

for b in backorder-demo order-intake allocation replenishment-trigger notifier console backorder backorder-provision; do
    [[ -x $BIN_DIR/$b ]] || die "$BIN_DIR/$b not found; build first: cargo build --release --bins (or run 'make demo')"
done

if [[ -z ${NATS_URL:-} ]]; then
    NATS_URL="$("$BO_ROOT/scripts/ensure-nats.sh" | tail -n1)"
    # Our own secured server: the demo's driver is the admin (it resets the streams), the CLI the operator,
    # each service its own role (scripts/services.sh).
    export BO_NATS_CREDS_DIR="$BO_ROOT/.local/nats"
    export NATS_CREDS="$BO_NATS_CREDS_DIR/admin.creds"
    OPERATOR_CREDS="$BO_NATS_CREDS_DIR/operator.creds"
else
    NATS_URL="$("$BO_ROOT/scripts/ensure-nats.sh" | tail -n1)"
    OPERATOR_CREDS="${NATS_CREDS:-}"
fi
pg="$("$BO_ROOT/scripts/ensure-postgres.sh" | tail -n1)"
PG_BASE="$(pg_base "$pg")"
export NATS_URL
export DATABASE_URL="$PG_BASE/$DEMO_DB"

# --- clean slate ------------------------------------------------------------------
# Stop services left over from an interrupted demo before touching their data.
"$BO_ROOT/scripts/services.sh" down

log "resetting the demo's NATS streams (backorder-demo --reset)"
"$DEMO_BIN" --reset >&2 || die "backorder-demo --reset failed"

log "recreating database $DEMO_DB"
psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/postgres" >&2 <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE);
CREATE DATABASE $DEMO_DB;
SQL

# --- services -----------------------------------------------------------------------
# shellcheck disable=SC2317 # invoked by the trap
on_exit() {
    local rc=$?
    "$BO_ROOT/scripts/services.sh" down || true
    log "service logs: $BO_RUN_DIR/{order-intake,allocation,replenishment-trigger,notifier,console}.log"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BO_ROOT/scripts/services.sh" up
sleep "${BO_DEMO_WARMUP:-2}" # let them create their streams and consumers

# --- the story ----------------------------------------------------------------------
log "running $DEMO_BIN (NATS_URL=$NATS_URL BO_PREFIX=$BO_PREFIX DATABASE_URL=$(mask_url "$DATABASE_URL"))"
rc=0
"$DEMO_BIN" || rc=$?
if [[ $rc -ne 0 ]]; then
    log "demo exited with code $rc"
    exit "$rc"
fi

# --- the backorder desk -------------------------------------------------------------
echo
echo "== The backorder desk (backorder kpi; backorder backorders) =="
NATS_CREDS="$OPERATOR_CREDS" "$BIN_DIR/backorder" kpi || rc=$?
echo
NATS_CREDS="$OPERATOR_CREDS" "$BIN_DIR/backorder" backorders --all || rc=$?
console_url="$(sed -n 's/.*console serving on \(http:[^ ]*\).*/\1/p' "$BO_RUN_DIR/console.log" 2>/dev/null | tail -n1 || true)"
echo
echo "== The console: open ${console_url:-(see $BO_RUN_DIR/console.log)} in a browser =="
echo "   token for replays and re-prioritising: $(cat "$BO_RUN_DIR/console-token" 2>/dev/null || echo "\$BO_CONSOLE_TOKEN")"
echo "   the same from a shell: NATS_URL=$(mask_url "$NATS_URL") NATS_CREDS=${OPERATOR_CREDS:-} BO_PREFIX=$BO_PREFIX $BIN_DIR/backorder --help"
if [[ $rc -eq 0 ]]; then
    log "demo finished successfully"
else
    log "demo's desk view failed with code $rc"
fi
if [[ -t 0 && -z ${BO_DEMO_EXIT:-} ]]; then
    log "the services and the console keep running for you; press Ctrl-C to stop them"
    # Ctrl-C is the way out here, not a failure: the exit code stays the demo's.
    trap 'exit "$rc"' INT
    while true; do sleep 3600; done
fi
exit "$rc"
