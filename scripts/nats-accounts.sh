#!/usr/bin/env bash
# Writes the NATS users of backorder for one prefix (or several): a creds file per role and the
# nats-server `authorization` block that gives each its permissions (see docs/contract.md, "NATS users").
#
#   scripts/nats-accounts.sh PREFIX [OUT_DIR]      # OUT_DIR default deploy/nats/secrets
#
# Existing creds files are kept (their keys stay valid); accounts.conf is rewritten. Include it in the
# server's configuration (deploy/nats/server.conf does) and reload the server.
set -euo pipefail
BO_SCRIPT=nats-accounts
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 && $# -le 2 ]] || die "usage: scripts/nats-accounts.sh PREFIX [OUT_DIR]"
prefix="$1"
out="${2:-$BO_ROOT/deploy/nats/secrets}"

bin=""
for dir in ${BO_BIN_DIR:+"$BO_BIN_DIR"} "$BO_ROOT/target/release" "$BO_ROOT/target/debug"; do
    [[ -x $dir/backorder-provision ]] && bin="$dir/backorder-provision" && break
done
if [[ -z $bin ]]; then
    log "building backorder-provision"
    (cd "$BO_ROOT" && cargo build -q -p backorder-provision >&2) || die "could not build backorder-provision"
    bin="$BO_ROOT/target/debug/backorder-provision"
fi
"$bin" accounts --prefix "$prefix" --out-dir "$out"
