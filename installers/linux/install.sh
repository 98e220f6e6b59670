#!/usr/bin/env bash
# Installs Faceswap++ on Linux: the OFX bundle where editors look, the faceswapd daemon, and a
# systemd user unit that starts the daemon at login. Idempotent: running it again leaves the
# same tree. Prints what it did.
#
#   installers/linux/install.sh [--user | --system] [--destdir DIR] [--bundle DIR]
#                               [--daemon FILE] [--no-assets] [--no-start]
#
# --user (default, no root): bundle in ~/.local/share/faceswappp/OFX/Plugins, an
#   OFX_PLUGIN_PATH entry in ~/.config/environment.d, daemon in ~/.local/bin, unit in
#   ~/.config/systemd/user (enabled and started).
# --system (root): bundle in /usr/OFX/Plugins (every OFX host's default), daemon in
#   /usr/local/bin, a user unit for all users in /usr/lib/systemd/user (enabled globally).
# --destdir DIR (or DESTDIR=DIR): install under DIR as a staging root for packaging; nothing is started or
#   fetched (assets are fetched on the user's machine: `faceswapd assets fetch --models`).
# --bundle / --daemon: install these instead of building them (release) from this checkout.
# Uninstall with installers/linux/uninstall.sh and the same mode and --destdir.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mode=user
destdir="${DESTDIR:-}"
bundle_src=""
daemon_src=""
fetch_assets=1
start=1
while [ $# -gt 0 ]; do
    case "$1" in
        --user) mode=user ;;
        --system) mode=system ;;
        --destdir) destdir="${2:?--destdir needs a folder}"; shift ;;
        --bundle) bundle_src="${2:?--bundle needs a folder}"; shift ;;
        --daemon) daemon_src="${2:?--daemon needs a file}"; shift ;;
        --no-assets) fetch_assets=0 ;;
        --no-start) start=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$destdir" ]; then
    mkdir -p "$destdir"
    destdir="$(cd "$destdir" && pwd)"
    fetch_assets=0
    start=0
fi

# shellcheck source=installers/linux/layout.sh
source "$repo_root/installers/linux/layout.sh"
layout "$mode"

if [ "$mode" = system ] && [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    echo "--system installs into /usr: run it as root (or use --user, the default)" >&2
    exit 1
fi

if [ -z "$bundle_src" ]; then
    bundle_src="$("$repo_root/installers/bundle.sh")/"
    bundle_src="${bundle_src%/}"
fi
if [ -z "$daemon_src" ]; then
    (cd "$repo_root" && cargo build -q --release -p faceswapd)
    daemon_src="${CARGO_TARGET_DIR:-$repo_root/target}/release/faceswapd"
fi
for f in "$bundle_src/Contents/Info.plist" "$bundle_src/Contents/Linux-x86-64/Faceswap.ofx" "$daemon_src"; do
    if [ ! -f "$f" ]; then
        echo "missing $f: build it first (installers/bundle.sh, cargo build --release -p faceswapd)" >&2
        exit 1
    fi
done

manifest="$destdir$manifest_file"
declare -a files=()
declare -a dirs=()
if [ -f "$manifest" ]; then
    # Folders a previous run created stay ours, so uninstall removes them too.
    while IFS= read -r line; do
        case "$line" in d\ *) dirs+=("${line#d }") ;; esac
    done < "$manifest"
fi

# Creates a folder (and its parents), recording the ones this installer created.
make_dir() {
    local d="$1" missing=()
    while [ ! -d "$destdir$d" ]; do
        missing+=("$d")
        d="$(dirname "$d")"
    done
    local i
    for ((i = ${#missing[@]} - 1; i >= 0; i--)); do
        mkdir -p "$destdir${missing[i]}"
        dirs+=("${missing[i]}")
    done
}

# Installs one file atomically (temp name, then rename) with the given mode.
put_file() {
    local src="$1" dst="$2" perm="$3"
    make_dir "$(dirname "$dst")"
    local tmp
    tmp="$(dirname "$destdir$dst")/.$(basename "$dst").installing"
    install -m "$perm" "$src" "$tmp"
    mv -f "$tmp" "$destdir$dst"
    files+=("$dst")
}

# Writes text to a file atomically.
put_text() {
    local text="$1" dst="$2" tmp
    tmp="$(mktemp)"
    printf '%s' "$text" > "$tmp"
    put_file "$tmp" "$dst" 0644
    rm -f "$tmp"
}

echo "Faceswap++ $mode install${destdir:+ into staging root $destdir}"
# The bundle: every file under Contents, laid out per the OFX packaging spec.
while IFS= read -r -d '' f; do
    rel="${f#"$bundle_src"/}"
    perm=0644
    [ -x "$f" ] && perm=0755
    case "$rel" in Contents/Linux-x86-64/*) perm=0755 ;; esac
    put_file "$f" "$bundle_dir/$rel" "$perm"
done < <(find "$bundle_src" -type f -print0 | sort -z)
echo "  OFX bundle      $destdir$bundle_dir"
put_file "$daemon_src" "$daemon_path" 0755
echo "  daemon          $destdir$daemon_path"
put_text "$("$daemon_src" service definition --exec "$daemon_path")
" "$unit_path"
echo "  systemd unit    $destdir$unit_path"
if [ -n "$env_file" ]; then
    put_text "# Faceswap++: OFX hosts find the plug-in bundle here.
OFX_PLUGIN_PATH=$plugin_root\${OFX_PLUGIN_PATH:+:\${OFX_PLUGIN_PATH}}
" "$env_file"
    echo "  environment     $destdir$env_file (OFX_PLUGIN_PATH, from your next login)"
fi

# The manifest lists every file and every folder this installer created, for uninstall.
make_dir "$(dirname "$manifest_file")"
files+=("$manifest_file")
manifest_text="$(
    printf 'f %s\n' "${files[@]}" | sort -u
    if [ ${#dirs[@]} -gt 0 ]; then printf 'd %s\n' "${dirs[@]}" | sort -u; fi
)"
put_text "$manifest_text
" "$manifest_file"
echo "  manifest        $destdir$manifest_file"

if [ "$start" = 1 ]; then
    if [ "$mode" = system ]; then
        if systemctl --global enable faceswapd.service >/dev/null 2>&1; then
            echo "  enabled faceswapd.service for every user (starts at their next login)"
        else
            echo "  could not enable the unit globally: run 'systemctl --global enable faceswapd.service'"
        fi
    elif systemctl --user daemon-reload >/dev/null 2>&1 \
        && systemctl --user enable --now faceswapd.service >/dev/null 2>&1; then
        echo "  enabled and started faceswapd.service (systemctl --user)"
    else
        echo "  no systemd user session here: the daemon starts at your next login, or on demand"
        echo "  (the plug-in and the CLI start it when it is not running)"
    fi
fi
if [ "$fetch_assets" = 1 ] && [ "$mode" = system ]; then
    echo "  model assets are per user: each user runs 'faceswapd assets fetch --models --runtime'"
    echo "  (or 'faceswapd doctor' to see what is missing)"
elif [ "$fetch_assets" = 1 ]; then
    echo "  fetching model assets (pinned SHA-256) ..."
    "$destdir$daemon_path" assets fetch --models --runtime
fi
echo "done."
