#!/usr/bin/env bash
# Make sure `cargo fuzz` (crates.io cargo-fuzz, libFuzzer) is available:
# installs it with `cargo install cargo-fuzz --locked` when missing.
# cargo fuzz needs nightly features; on a stable toolchain the Makefile runs it
# with RUSTC_BOOTSTRAP=1. Prints nothing on stdout. Idempotent.
set -euo pipefail
BO_SCRIPT=ensure-cargo-fuzz
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PATH="$HOME/.cargo/bin:$PATH:/usr/lib/rustup/bin"

"$BO_ROOT/scripts/ensure-rust.sh"

if cargo fuzz --version >/dev/null 2>&1; then
    log "$(cargo fuzz --version)"
    exit 0
fi
# libFuzzer is compiled from C++ by the libfuzzer-sys crate.
have c++ || have g++ || apt_install g++
log "cargo install cargo-fuzz --locked"
cargo install cargo-fuzz --locked >&2
log "$(cargo fuzz --version)"
