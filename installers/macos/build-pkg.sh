#!/usr/bin/env bash
# Builds the macOS installer package on a Mac:
#   Faceswap.ofx.bundle/Contents/{Info.plist, Resources/, MacOS/Faceswap.ofx}
#     -> /Library/OFX/Plugins (where OFX hosts look on macOS)
#   faceswapd -> /usr/local/bin, the launchd agent -> /Library/LaunchAgents (every user).
# Binaries are universal (lipo) when both aarch64 and x86_64 targets are installed
# (rustup target add aarch64-apple-darwin x86_64-apple-darwin), else the host's.
#
#   installers/macos/build-pkg.sh [--out DIR] [--sign "Developer ID Installer: …"]
#
# Signing and notarisation (see installers/README.md): codesign the plug-in and the daemon
# with a "Developer ID Application" identity and the hardened runtime before packaging
# (CODESIGN_IDENTITY), sign the package with --sign, then `xcrun notarytool submit … --wait`
# and `xcrun stapler staple` the .pkg.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$repo_root/target/macos-pkg"
sign=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="${2:?}"; shift ;;
        --sign) sign="${2:?}"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$(uname -s)" != Darwin ]; then
    echo "build-pkg.sh needs macOS (pkgbuild, productbuild, lipo)" >&2
    exit 1
fi
cd "$repo_root"
targets=()
for t in aarch64-apple-darwin x86_64-apple-darwin; do
    if rustup target list --installed | grep -qx "$t"; then targets+=("$t"); fi
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "no Apple target installed: rustup target add aarch64-apple-darwin x86_64-apple-darwin" >&2
    exit 1
fi
plugin_libs=()
daemons=()
for t in "${targets[@]}"; do
    cargo build --release --target "$t" -p faceswap-ofx -p faceswapd
    plugin_libs+=("target/$t/release/libfaceswap_ofx.dylib")
    daemons+=("target/$t/release/faceswapd")
done
root="$out/root"
rm -rf "$root"
bundle="$root/Library/OFX/Plugins/Faceswap.ofx.bundle"
mkdir -p "$bundle/Contents/MacOS" "$bundle/Contents/Resources" "$root/usr/local/bin" "$root/Library/LaunchAgents"
lipo -create "${plugin_libs[@]}" -output "$bundle/Contents/MacOS/Faceswap.ofx"
lipo -create "${daemons[@]}" -output "$root/usr/local/bin/faceswapd"
cp installers/resources/*.png "$bundle/Contents/Resources/"
installers/info-plist.sh > "$bundle/Contents/Info.plist"
cp installers/macos/org.faceswappp.faceswapd.plist "$root/Library/LaunchAgents/"
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    codesign --force --options runtime --timestamp --sign "$CODESIGN_IDENTITY" \
        "$bundle/Contents/MacOS/Faceswap.ofx" "$root/usr/local/bin/faceswapd"
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
pkgbuild --root "$root" --identifier org.faceswappp.pkg --version "$version" \
    --scripts installers/macos/scripts "$out/faceswappp-component.pkg"
product_args=(--package "$out/faceswappp-component.pkg" "$out/Faceswap++-$version.pkg")
if [ -n "$sign" ]; then product_args=(--sign "$sign" "${product_args[@]}"); fi
productbuild "${product_args[@]}"
echo "$out/Faceswap++-$version.pkg"
