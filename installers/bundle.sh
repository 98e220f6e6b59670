#!/usr/bin/env bash
# Builds the OFX plug-in and lays it out as an OFX bundle (OpenFX packaging spec):
#   Faceswap.ofx.bundle/Contents/{Info.plist, Resources/<plugin id>.png, Linux-x86-64/Faceswap.ofx}
# Usage: installers/bundle.sh [--debug] [--test-hooks] [--out DIR]   (default: release, target/bundle)
#   --test-hooks: the tests' own build (answers the test host's forced-panic action); never ship it.
# Prints the bundle's path. Hosts find it in a folder on OFX_PLUGIN_PATH or /usr/OFX/Plugins.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=release
features=()
out="$repo_root/target/bundle"
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug ;;
        --test-hooks) features=(--features test-hooks) ;;
        --out) out="$2"; shift ;;
        *) echo "unknown option $1 (use --debug, --test-hooks, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done
cd "$repo_root"
if [ "$profile" = release ]; then
    cargo build -q --release -p faceswap-ofx "${features[@]}"
else
    cargo build -q -p faceswap-ofx "${features[@]}"
fi
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
bundle="$out/Faceswap.ofx.bundle"
mkdir -p "$bundle/Contents/Linux-x86-64"
# Copied to a temporary name and renamed: a host scanning the folder never sees half a file.
cp -f "$target_dir/$profile/libfaceswap_ofx.so" "$bundle/Contents/Linux-x86-64/.Faceswap.ofx.tmp"
mv -f "$bundle/Contents/Linux-x86-64/.Faceswap.ofx.tmp" "$bundle/Contents/Linux-x86-64/Faceswap.ofx"
mkdir -p "$bundle/Contents/Resources"
cp -f installers/resources/org.faceswappp.Faceswap.png installers/resources/org.faceswappp.FaceswapTrainer.png \
    "$bundle/Contents/Resources/"
"$repo_root/installers/info-plist.sh" > "$bundle/Contents/Info.plist"
echo "$bundle"
