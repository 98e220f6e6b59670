#!/usr/bin/env bash
# The main job on the default data, on a fresh Debian/Ubuntu machine: install what is missing,
# build faceswapd, fetch the pinned assets (and convert the MediaPipe models to ONNX), then
# through the daemon: extract faces from the fixture photos and average them into a person
# who does not exist (side A), extract the fixture video (side B), train a small SAEHD model on
# the CPU for a few minutes, and convert the video: the swapped video (with its audio, labelled
# synthetic) and a before/after PNG. Idempotent: a second run resumes the model.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=installers/deps.sh
source installers/deps.sh

started=$(date +%s)
cargo build --release -p faceswapd
faceswapd=target/release/faceswapd
"$faceswapd" assets fetch
"$faceswapd" doctor
video="$("$faceswapd" assets path WolfgangLanger_Pexels.mp4)"
out="$repo_root/out"
photos="$out/photos"
mkdir -p "$photos"
for name in grace_hopper.jpg eileen_collins_astronaut.png luis_pedro_coelho_mahotas.jpg \
    vladmandic_faceapi_sample3_multiface.jpg; do
    cp -f "$("$faceswapd" assets path "$name")" "$photos/"
done
stills="$out/stills"
side_a="$out/average_face"
side_b="$out/video_faces"
model="$out/model"
mkdir -p "$stills" "$side_b" "$model"
# Side A: nobody real. The average, in aligned space, of the six faces in the fixture stills.
"$faceswapd" extract "$photos" --out "$stills" --size 128 --centering f
"$faceswapd" faceset average "$stills" --out "$side_a" --count 64
# Side B: the faces of the video, which convert replaces.
"$faceswapd" extract "$video" --out "$side_b" --size 128 --centering f
# A small model that learns on a CPU in minutes (DFL's defaults need a GPU).
"$faceswapd" train --a "$side_a" --b "$side_b" --model "$model" --resolution 64 \
    --ae-dims 64 --e-dims 16 --d-dims 8 --d-mask-dims 4 --batch 6 --lr 5e-4 --warmup 20 \
    --steps "${DEMO_STEPS:-1200}" --save-every 100 --preview-every 100
"$faceswapd" convert "$video" --alignments "$side_b" --model "$model" \
    --out "$out/swapped.mp4" --color rct --erode 16 --blur 48 \
    --label "SYNTHETIC - face swapped by Faceswap++" --project demo \
    --before-after "$out/before_after.png"
echo
echo "swapped video:     $out/swapped.mp4 (source audio kept; labelled synthetic; provenance tag in its metadata)"
echo "before | after:    $out/before_after.png"
echo "side A (nobody):   $side_a/faces (average_000.png is the average face)"
echo "side B faces:      $side_b/faces ($(find "$side_b/faces" -name '*.png' | wc -l) PNG files), alignments $side_b/alignments.fsppa"
echo "model:             $model (checkpoint.fsppm, loss.csv; preview.png columns: A, A→A, A→B, B, B→B, B→A)"
echo "took $(( $(date +%s) - started )) s. faceswapd keeps running in the background;"
echo "'$faceswapd status' shows it, '$faceswapd shutdown' stops it."
