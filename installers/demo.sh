#!/usr/bin/env bash
# The main job on the default data, on a fresh Debian/Ubuntu machine: install what is missing,
# build faceswapd, fetch the pinned assets (and convert the MediaPipe models to ONNX), then
# through the daemon: extract faces from the fixture photos (side A) and the fixture video
# (side B), then train a small SAEHD model on the CPU for a few minutes (previews + loss log).
# (Convert joins this demo when it lands.) Idempotent: a second run resumes the model.
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
photos="$repo_root/out/photos"
mkdir -p "$photos"
for name in grace_hopper.jpg eileen_collins_astronaut.png luis_pedro_coelho_mahotas.jpg \
    vladmandic_faceapi_sample3_multiface.jpg; do
    cp -f "$("$faceswapd" assets path "$name")" "$photos/"
done
out="$repo_root/out/faceset"
side_a="$repo_root/out/faceset_a"
model="$repo_root/out/model"
mkdir -p "$out" "$side_a" "$model"
"$faceswapd" extract "$photos" --out "$side_a" --size 128 --centering f
"$faceswapd" extract "$video" --out "$out" --size 256
# A small model that learns on a CPU in minutes (DFL's defaults need a GPU).
"$faceswapd" train --a "$side_a" --b "$out" --model "$model" --resolution 64 \
    --ae-dims 64 --e-dims 16 --d-dims 8 --d-mask-dims 4 --batch 6 --lr 5e-4 --warmup 20 \
    --steps 600 --save-every 100 --preview-every 100
echo
echo "aligned faces:     $out/faces ($(find "$out/faces" -name '*.png' | wc -l) PNG files, metadata inside each)"
echo "rejected for review: $out/rejected ($(find "$out/rejected" -name '*.png' | wc -l) files)"
echo "alignments store:  $out/alignments.fsppa"
echo "side A faces:      $side_a/faces (the fixture photos)"
echo "model:             $model (checkpoint.fsppm, loss.csv; preview.png columns: A, A→A, A→B, B, B→B, B→A)"
echo "faceswapd keeps running in the background; '$faceswapd status' shows it, '$faceswapd shutdown' stops it."
