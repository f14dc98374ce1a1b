#!/usr/bin/env bash
# Start / stop the four services and the console (web dashboard) in the background.
#
#   scripts/services.sh up       start any that are not running (idempotent)
#   scripts/services.sh down     SIGTERM them, wait, SIGKILL after a timeout
#   scripts/services.sh status   show what runs
#
# Environment (all optional):
#   NATS_URL       default: whatever scripts/ensure-nats.sh prints
#   DATABASE_URL   default: <scripts/ensure-postgres.sh base>/backorder
#                  (allocation creates that database itself if missing)
#   BO_PREFIX      default: bo
#   BO_RUN_DIR     pid files and logs, default .local/run
#   BO_BIN_DIR     where the binaries are, default target/release
#   BO_STOP_TIMEOUT  seconds to wait after SIGTERM, default 15
#   BO_CONSOLE_ADDR  where the console listens, default 127.0.0.1:8090
#   BO_CONSOLE_TOKEN the console's token for replays and re-prioritising; unset: a new one is made and kept
#                  in $BO_RUN_DIR/console-token (read it there)
# Anything else in the environment (RUST_LOG, BO_LOG_FORMAT, ...) is passed on; of the BO_* variables each
# binary gets those its --help lists.
set -euo pipefail
BO_SCRIPT=services
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES=(order-intake allocation replenishment-trigger notifier console)
RUN_DIR="${BO_RUN_DIR:-$BO_ROOT/.local/run}"
BIN_DIR="${BO_BIN_DIR:-$BO_ROOT/target/release}"
STOP_TIMEOUT="${BO_STOP_TIMEOUT:-15}"

# only_own_bo_vars BIN: unset every BO_* variable BIN does not read (its --help lists them, without
# connecting anywhere): the scripts' own, and those of the other services, which it would warn about; the
# console's token stays out of the services' environment.
only_own_bo_vars() {
    local own name
    own="$("$1" --help | sed -n '/^Environment:/,$ s/^  \(BO_[A-Z0-9_]*\) .*/\1/p')"
    [[ -n $own ]] || die "$1 --help lists no environment variables"
    for name in $(compgen -e); do
        if [[ $name == BO_* ]] && ! grep -qx "$name" <<<"$own"; then
            unset "$name"
        fi
    done
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$RUN_DIR" "$1"; }

# running SVC: print the pid if SVC runs from our pid file (and really is that
# binary, not a recycled pid).
running() {
    local pf pid exe
    pf="$(pid_file "$1")"
    [[ -f $pf ]] || return 1
    pid="$(tr -dc 0-9 <"$pf")"
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    exe="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1)"
    [[ $(basename -- "$exe") == "$1" ]] || return 1
    printf '%s\n' "$pid"
}

cmd_status() {
    local svc pid
    for svc in "${SERVICES[@]}"; do
        if pid="$(running "$svc")"; then
            printf '%-22s running (pid %s), log %s\n' "$svc" "$pid" "$(log_file "$svc")"
        else
            printf '%-22s stopped\n' "$svc"
        fi
    done
}

cmd_down() {
    local svc pid pids=() names=() i deadline
    for svc in "${SERVICES[@]}"; do
        if pid="$(running "$svc")"; then
            log "stopping $svc (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$svc")
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for i in "${!pids[@]}"; do
        while kill -0 "${pids[i]}" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "${pids[i]}" 2>/dev/null; then
            warn "${names[i]} (pid ${pids[i]}) did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "${pids[i]}" 2>/dev/null || true
        fi
    done
    for svc in "${SERVICES[@]}"; do rm -f "$(pid_file "$svc")"; done
    if ((${#pids[@]})); then
        log "stopped ${names[*]}"
    else
        log "nothing was running"
    fi
}

cmd_up() {
    local svc pid bin lf started=() failed=()
    if [[ -z ${NATS_URL:-} ]]; then
        NATS_URL="$("$BO_ROOT/scripts/ensure-nats.sh" | tail -n1)"
        # Our own server: a user per role, written by ensure-nats.sh.
        BO_NATS_CREDS_DIR="${BO_NATS_CREDS_DIR:-$BO_ROOT/.local/nats}"
    fi
    if [[ -z ${DATABASE_URL:-} ]]; then
        DATABASE_URL="$("$BO_ROOT/scripts/ensure-postgres.sh" | tail -n1)/backorder"
    fi
    export NATS_URL DATABASE_URL
    export BO_PREFIX="${BO_PREFIX:-bo}"
    mkdir -p "$RUN_DIR"
    ensure_gitignore
    if [[ -z ${BO_CONSOLE_TOKEN:-} ]]; then
        if [[ ! -s $RUN_DIR/console-token ]]; then
            (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$RUN_DIR/console-token")
        fi
        BO_CONSOLE_TOKEN="$(cat "$RUN_DIR/console-token")"
    fi
    export BO_CONSOLE_TOKEN

    for svc in "${SERVICES[@]}"; do
        bin="$BIN_DIR/$svc"
        [[ -x $bin ]] || die "$bin not found; build first: cargo build --release --bins (or make build)"
    done

    # With a user per role: the admin provisions the prefix, each service runs as its own role and creates
    # nothing (BO_PROVISION=false). Otherwise each service provisions what it needs, with NATS_CREDS as given.
    if [[ -n ${BO_NATS_CREDS_DIR:-} ]]; then
        [[ -x $BIN_DIR/backorder-provision ]] || die "$BIN_DIR/backorder-provision not found; build first"
        log "provisioning prefix $BO_PREFIX as admin (streams, buckets, consumers; ${BO_STREAM_REPLICAS:-1} replica(s))"
        NATS_CREDS="$BO_NATS_CREDS_DIR/admin.creds" "$BIN_DIR/backorder-provision" streams >&2 ||
            die "backorder-provision streams failed"
        export BO_PROVISION=false
    fi

    for svc in "${SERVICES[@]}"; do
        if pid="$(running "$svc")"; then
            log "$svc already running (pid $pid)"
            continue
        fi
        bin="$BIN_DIR/$svc"
        lf="$(log_file "$svc")"
        [[ -f $lf ]] && mv -f "$lf" "$lf.prev"
        # The password stays out of the log.
        printf '=== %s: %s NATS_URL=%s BO_PREFIX=%s DATABASE_URL=%s\n' \
            "$(date -Is)" "$bin" "$(mask_url "$NATS_URL")" "$BO_PREFIX" "$(mask_url "$DATABASE_URL")" >"$lf"
        (
            close_inherited_fds
            only_own_bo_vars "$bin"
            if [[ -n ${BO_NATS_CREDS_DIR:-} ]]; then
                export NATS_CREDS="$BO_NATS_CREDS_DIR/$svc.creds"
            fi
            exec setsid "$bin"
        ) </dev/null >>"$lf" 2>&1 &
        echo "$!" >"$(pid_file "$svc")"
        started+=("$svc")
        log "started $svc (pid $!), log $lf"
    done

    # A service that fails on start-up (bad config, no NATS) exits at once.
    ((${#started[@]})) || return 0
    sleep "${BO_START_GRACE:-1}"
    for svc in "${started[@]}"; do
        running "$svc" >/dev/null || failed+=("$svc")
    done
    if ((${#failed[@]})); then
        for svc in "${failed[@]}"; do
            log "$svc exited right after start; last lines of $(log_file "$svc"):"
            tail -n 20 "$(log_file "$svc")" >&2 || true
        done
        cmd_down
        die "could not start: ${failed[*]}"
    fi
    log "services up with BO_PREFIX=$BO_PREFIX; logs in $RUN_DIR"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
