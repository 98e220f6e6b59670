#!/usr/bin/env bash
# The main job on the default data, on a fresh Debian/Ubuntu machine: install what is missing,
# build faceswapd, fetch the pinned assets, then export the frames of the fixture video through
# the daemon (the face-extraction demo replaces this step once extraction lands). Idempotent.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=installers/deps.sh
source installers/deps.sh

cargo build --release -p faceswapd
faceswapd=target/release/faceswapd
"$faceswapd" assets fetch
"$faceswapd" doctor
video="$("$faceswapd" assets path WolfgangLanger_Pexels.mp4)"
out="$repo_root/out/frames"
mkdir -p "$out"
"$faceswapd" frames extract "$video" --out "$out" --every 4
echo
echo "frames written to: $out ($(find "$out" -name 'frame_*.png' | wc -l) PNG files)"
echo "faceswapd keeps running in the background; '$faceswapd status' shows it, '$faceswapd shutdown' stops it."
