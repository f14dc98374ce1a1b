#!/usr/bin/env bash
# Make sure a Rust toolchain (cargo, rustc) and a C toolchain (cc, pkg-config,
# needed by crates such as ring) are available.
#
#   * cargo on PATH or in ~/.cargo/bin: fine (a warning if rustc is older than
#     the workspace's rust-version).
#   * otherwise, if Debian offers the `rustup` package (Debian 13+, not
#     bookworm): apt-get install rustup, then `rustup default stable`.
#   * otherwise: a clear error asking the user to install Rust with rustup.
#     (Debian 12's own rustc/cargo packages are far too old for edition 2024,
#     so we do not install them.)
#   * cc/gcc or pkg-config missing: apt-get install build-essential pkg-config.
#
# cargo-nextest is NOT installed here; the Makefile falls back to cargo test.
# Prints nothing on stdout. Idempotent.
set -euo pipefail
BO_SCRIPT=ensure-rust
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PATH="$HOME/.cargo/bin:$PATH:/usr/lib/rustup/bin"

# --- C toolchain -----------------------------------------------------------------
missing=()
if ! have cc || ! have gcc || ! have make; then missing+=(build-essential); fi
have pkg-config || missing+=(pkg-config)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# --- Rust toolchain ----------------------------------------------------------------
if ! have cargo; then
    if ! have rustup; then
        if have apt-cache && have apt-get; then
            # A fresh machine may have empty package lists: update once first.
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || true
            _BO_APT_UPDATED=1
            if [[ -n "$(apt-cache policy rustup 2>/dev/null | awk '/Candidate:/ {print $2}' | grep -v '(none)' || true)" ]]; then
                apt_install rustup
            fi
        fi
    fi
    if have rustup; then
        log "rustup default stable"
        rustup default stable >&2
    fi
fi

if ! have cargo; then
    cat >&2 <<'EOF'
[ensure-rust] error: no Rust toolchain found (cargo is neither on PATH nor in ~/.cargo/bin),
[ensure-rust] and this system's package manager has no `rustup` package.
[ensure-rust] Install Rust (stable, >= the workspace's rust-version) with rustup:
[ensure-rust]     curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
[ensure-rust] then open a new shell (or `source ~/.cargo/env`) and run this again.
[ensure-rust] (Debian 12's own rustc/cargo packages are too old for this project.)
EOF
    exit 1
fi

# --- version check -----------------------------------------------------------------
want="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$BO_ROOT/Cargo.toml" 2>/dev/null | head -n1)"
have_v="$(rustc --version 2>/dev/null | awk '{print $2}')"
if [[ -n $want && -n $have_v ]] && ! version_ge "$have_v" "$want"; then
    if have rustup; then
        log "rustc $have_v is older than the workspace's rust-version $want; running rustup update stable"
        rustup update stable >&2 || warn "rustup update failed"
        have_v="$(rustc --version 2>/dev/null | awk '{print $2}')"
    fi
    version_ge "$have_v" "$want" ||
        die "rustc $have_v is older than the workspace's rust-version $want; please update Rust (rustup update stable)"
fi
log "$(cargo --version) / rustc ${have_v:-?} at $(command -v cargo)"
