#!/usr/bin/env bash
# Removes what installers/linux/install.sh installed, as its manifest lists it: stops and
# disables the service, removes the files, then the folders the installer created when they
# are empty (the daemon's projects, jobs and models are never touched). Idempotent.
#
#   installers/linux/uninstall.sh [--user | --system] [--destdir DIR]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mode=user
destdir="${DESTDIR:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --user) mode=user ;;
        --system) mode=system ;;
        --destdir) destdir="${2:?--destdir needs a folder}"; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$destdir" ]; then
    destdir="$(cd "$destdir" && pwd)"
fi
# shellcheck source=installers/linux/layout.sh
source "$repo_root/installers/linux/layout.sh"
layout "$mode"

manifest="$destdir$manifest_file"
if [ ! -f "$manifest" ]; then
    echo "Faceswap++ is not installed in $mode mode${destdir:+ under $destdir} ($manifest is missing); nothing to do."
    exit 0
fi
echo "Faceswap++ $mode uninstall${destdir:+ from staging root $destdir}"
if [ -z "$destdir" ]; then
    if [ "$mode" = system ]; then
        systemctl --global disable faceswapd.service >/dev/null 2>&1 || true
    elif systemctl --user disable --now faceswapd.service >/dev/null 2>&1; then
        echo "  stopped and disabled faceswapd.service"
    fi
fi
declare -a dirs=()
removed=0
while IFS= read -r line; do
    case "$line" in
        f\ *)
            if rm -f "$destdir${line#f }"; then removed=$((removed + 1)); fi
            ;;
        d\ *) dirs+=("${line#d }") ;;
    esac
done < "$manifest"
echo "  removed $removed files"
# Deepest folders first; a folder that still holds something is kept and named.
if [ ${#dirs[@]} -gt 0 ]; then
    while IFS= read -r d; do
        [ -d "$destdir$d" ] || continue
        if ! rmdir "$destdir$d" 2>/dev/null; then
            echo "  kept $destdir$d (not empty)"
        fi
    done < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
fi
if [ -z "$destdir" ] && [ "$mode" = user ]; then
    systemctl --user daemon-reload >/dev/null 2>&1 || true
fi
echo "done."
