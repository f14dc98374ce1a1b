#!/usr/bin/env bash
# Make a headless Chromium available for the console's browser test and
# print its path on the last line of stdout. Everything else goes to stderr.
#
#   1. /usr/bin/chromium exists: use it.
#   2. Otherwise install Debian's `chromium` package (apt-get; root or sudo).
#
# With --node also install the browser test's node packages (playwright-core,
# pinned by tests/browser/package-lock.json) with `npm ci`, unless they are
# there already. Playwright drives this Chromium (executablePath); it never
# downloads a browser of its own.
#
# Idempotent: safe to run again.
set -euo pipefail
BO_SCRIPT=ensure-chromium
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM=/usr/bin/chromium
BROWSER_TESTS="$BO_ROOT/tests/browser"

with_node=0
for arg in "$@"; do
    case $arg in
    --node) with_node=1 ;;
    *) die "unknown argument '$arg' (usage: ensure-chromium.sh [--node])" ;;
    esac
done

if [[ ! -x $CHROMIUM ]]; then
    apt_install chromium
    [[ -x $CHROMIUM ]] || die "$CHROMIUM still missing after apt-get install chromium"
fi
log "$("$CHROMIUM" --version 2>/dev/null || echo chromium) at $CHROMIUM"

if [[ $with_node -eq 1 ]]; then
    if ! have node || ! have npm; then
        apt_install nodejs npm
    fi
    have node || die "node still missing after apt-get install nodejs"
    lock="$BROWSER_TESTS/package-lock.json"
    stamp="$BROWSER_TESTS/node_modules/.package-lock.json"
    if [[ ! -f $stamp || $lock -nt $stamp ]]; then
        log "npm ci in tests/browser"
        (cd "$BROWSER_TESTS" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
fi

echo "$CHROMIUM"
