#!/usr/bin/env bash
# Make PostgreSQL reachable over TCP and print a base URL on the last line of
# stdout, WITHOUT a database name, e.g. postgres://postgres:postgres@127.0.0.1:5432
# (append /<dbname> yourself). Everything else goes to stderr.
#
# Decision order:
#   1. DATABASE_URL set by the caller: it is used as-is. We check it with
#      `psql "$DATABASE_URL" -c 'select 1'` and print it UNCHANGED (so if it
#      already names a database, the caller gets that back).
#   2. postgres://postgres:postgres@127.0.0.1:5432/postgres answers (the team's
#      machines: trust auth, so the password is ignored): print the base URL.
#   3. Otherwise set one up (fresh Debian 12, no systemd): apt-get install
#      postgresql if there is no server binary; start the cluster with
#      pg_ctlcluster (create it with pg_createcluster if missing); set the
#      postgres role's password to 'postgres' so TCP password auth works;
#      wait until it answers; print the base URL.
# Idempotent: safe to run again.
set -euo pipefail
BO_SCRIPT=ensure-postgres
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_USER=postgres
PG_PASSWORD=postgres
PG_HOST=127.0.0.1
PG_PORT=5432
READY_TIMEOUT=30
export PGCONNECT_TIMEOUT=5

base_url() { printf 'postgres://%s:%s@%s:%s' "$PG_USER" "$PG_PASSWORD" "$PG_HOST" "$1"; }

# try_psql URL: true if `select 1` works there.
try_psql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$1" -c 'select 1' >/dev/null 2>&1; }

ensure_psql_client() {
    have psql && return 0
    log "psql not found; installing postgresql-client"
    apt_install postgresql-client
    have psql || die "psql still not found after installing postgresql-client"
}

# --- 1. caller's DATABASE_URL ------------------------------------------------
if [[ -n ${DATABASE_URL:-} ]]; then
    ensure_psql_client
    if ! out="$(psql -X -q -t -A -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'select 1' 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "DATABASE_URL is set but 'select 1' fails there (it is used as-is; unset it to let this script pick/start a server)"
    fi
    log "using DATABASE_URL as given"
    printf '%s\n' "$DATABASE_URL"
    exit 0
fi

# --- 2. already reachable -------------------------------------------------------
if have psql && try_psql "$(base_url "$PG_PORT")/postgres"; then
    log "PostgreSQL answers on $PG_HOST:$PG_PORT"
    base_url "$PG_PORT"
    echo
    exit 0
fi

# --- 3. install / start / configure ---------------------------------------------
log "PostgreSQL does not answer on $PG_HOST:$PG_PORT as $PG_USER; setting it up"

server_installed() {
    have pg_ctlcluster && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}
if ! server_installed; then
    apt_install postgresql
    server_installed || die "PostgreSQL server still missing after apt-get install postgresql"
fi
ensure_psql_client

# Highest installed major version (a cluster from /etc/postgresql if any).
pick_version() {
    local v
    v="$(find /etc/postgresql -mindepth 2 -maxdepth 2 -type d -name main 2>/dev/null |
        awk -F/ '{print $(NF-1)}' | sort -V | tail -n1)"
    if [[ -z $v ]]; then
        v="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
            awk -F/ '{print $(NF-2)}' | sort -V | tail -n1)"
    fi
    printf '%s' "$v"
}
PG_VERSION="$(pick_version)"
[[ -n $PG_VERSION ]] || die "cannot find an installed PostgreSQL version"

# Run a command as the postgres OS user.
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        local cmd
        printf -v cmd '%q ' "$@"
        (cd / && su postgres -s /bin/sh -c "$cmd")
    elif have sudo; then
        if sudo -n true 2>/dev/null; then
            (cd / && sudo -n -u postgres -- "$@")
        else
            (cd / && sudo -u postgres -- "$@")
        fi
    else
        die "need root or sudo to act as the postgres user"
    fi
}

if [[ ! -f /etc/postgresql/$PG_VERSION/main/postgresql.conf ]]; then
    log "creating cluster $PG_VERSION/main"
    as_root pg_createcluster "$PG_VERSION" main --start >&2
else
    # Exit code 2 = already running; anything else is reported by pg_ctlcluster.
    log "starting cluster $PG_VERSION/main"
    rc=0
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start >&2 || rc=$?
    if [[ $rc -ne 0 && $rc -ne 2 ]]; then
        die "pg_ctlcluster $PG_VERSION main start failed (exit $rc); see /var/log/postgresql/"
    fi
fi

# The cluster's port (normally 5432; another cluster may have taken it).
port="$(pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" {print $3; exit}')"
PG_PORT="${port:-$PG_PORT}"

# Wait until the server accepts connections on its local socket.
deadline=$((SECONDS + READY_TIMEOUT))
until as_postgres psql -X -q -p "$PG_PORT" -d postgres -c 'select 1' >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "PostgreSQL $PG_VERSION did not become ready within ${READY_TIMEOUT}s"
    sleep 0.5
done

log "setting the password of role $PG_USER (for TCP password auth)"
as_postgres psql -X -q -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 \
    -c "ALTER USER $PG_USER PASSWORD '$PG_PASSWORD'" >&2

deadline=$((SECONDS + READY_TIMEOUT))
until try_psql "$(base_url "$PG_PORT")/postgres"; do
    if ((SECONDS >= deadline)); then
        psql -X "$(base_url "$PG_PORT")/postgres" -c 'select 1' >&2 || true
        die "PostgreSQL runs but $PG_USER cannot log in over TCP on $PG_HOST:$PG_PORT (check listen_addresses and pg_hba.conf in /etc/postgresql/$PG_VERSION/main)"
    fi
    sleep 0.5
done
log "PostgreSQL $PG_VERSION ready on $PG_HOST:$PG_PORT"
base_url "$PG_PORT"
echo
