#!/usr/bin/env bash
# Makes sure a Python with aiosmtpd is there for the notifier's SMTP tests
# (services/notifier/tests/smtp.rs start a real local SMTP server with it).
# Tries python3 on PATH, then Debian's /usr/bin/python3; installs Debian's
# python3-aiosmtpd, or else `pip install --user aiosmtpd`, when neither has it.
# Prints the Python to use last (the tests find it the same way, or take
# BO_SMTP_TEST_PYTHON).
set -euo pipefail
BO_SCRIPT=ensure-smtp-test
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_python() {
    local p
    for p in "${BO_SMTP_TEST_PYTHON:-}" python3 /usr/bin/python3; do
        [[ -n $p ]] || continue
        if "$p" -c 'import aiosmtpd' >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

if py="$(find_python)"; then
    echo "$py"
    exit 0
fi
if have apt-get; then
    log "installing python3-aiosmtpd"
    apt_install python3-aiosmtpd || warn "apt-get could not install python3-aiosmtpd"
fi
if ! py="$(find_python)"; then
    have python3 || die "python3 not found; install Python 3 and aiosmtpd"
    log "pip install --user aiosmtpd"
    python3 -m pip install --user --quiet aiosmtpd >&2 ||
        python3 -m pip install --user --quiet --break-system-packages aiosmtpd >&2 ||
        die "could not install aiosmtpd"
    py="$(find_python)" || die "aiosmtpd installed but not importable"
fi
echo "$py"
