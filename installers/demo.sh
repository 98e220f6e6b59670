#!/usr/bin/env bash
# The main job on the default data, on a fresh Debian/Ubuntu machine: install what is missing,
# build faceswapd, fetch the pinned assets (and convert the MediaPipe models to ONNX), then
# extract the faces of the fixture video through the daemon: aligned faces + alignments store.
# (Training and convert join this demo as they land.) Idempotent.
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
out="$repo_root/out/faceset"
mkdir -p "$out"
"$faceswapd" extract "$video" --out "$out" --size 256
echo
echo "aligned faces:     $out/faces ($(find "$out/faces" -name '*.png' | wc -l) PNG files, metadata inside each)"
echo "rejected for review: $out/rejected ($(find "$out/rejected" -name '*.png' | wc -l) files)"
echo "alignments store:  $out/alignments.fsppa"
echo "faceswapd keeps running in the background; '$faceswapd status' shows it, '$faceswapd shutdown' stops it."
