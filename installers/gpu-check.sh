#!/usr/bin/env bash
# The GPU check: one prepared run that measures Faceswap++ on a GPU machine and prints one
# markdown table (for BENCHMARKS.md). Built on a dev machine, run where the GPU is, which needs
# no Rust toolchain and no network.
#
#   installers/gpu-check.sh --build       # dev machine: build faceswapd (cuda, vulkan, wgpu),
#                                         # strip and pack it into target/gpu-check/ (< 64 MiB)
#   installers/gpu-check.sh               # GPU machine: run it (carry target/gpu-check)
#   installers/gpu-check.sh --software    # dev machine: the same run at small sizes on Mesa's
#                                         # lavapipe and the CPU, to know it works end to end
#
# What it runs: `faceswapd doctor` (driver, NVRTC, devices), `faceswapd gpu-check` (the smoke
# comparison on each GPU backend; training-step time and peak device memory of SAEHD-DF and
# LIAE-UDT at DFL's default dims and Phaze-A fspp-256, f32 and half precision), and the same
# SAEHD-DF step in PyTorch on the same device (tests/benches/reference/saehd_df_torch.py),
# with the ratio. FSPP_PYTHON picks the Python that has torch (default python3).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$repo_root/target/gpu-check"
build=0
software=0
for arg in "$@"; do
  case "$arg" in
    --build) build=1 ;;
    --software) software=1 ;;
    *) echo "usage: $0 [--build] [--software]" >&2; exit 2 ;;
  esac
done

if [ "$build" -eq 1 ]; then
  cd "$repo_root"
  # The dev profile optimises every ML crate (Cargo.toml); it is what CI builds, so this reuses
  # CI's cache.
  cargo build -p faceswapd --features cuda,vulkan,wgpu
  mkdir -p "$bundle"
  cp target/debug/faceswapd "$bundle/faceswapd"
  strip "$bundle/faceswapd"
  gzip -9 -f "$bundle/faceswapd"
  ls -l "$bundle"
  size=$(stat -c %s "$bundle/faceswapd.gz")
  if [ "$size" -gt $((56 * 1024 * 1024)) ]; then
    echo "target/gpu-check/faceswapd.gz is $((size / 1048576)) MiB: too big to carry with the tree (64 MiB)" >&2
    exit 1
  fi
  [ "$software" -eq 1 ] || exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -f "$bundle/faceswapd.gz" ]; then
  gzip -dc "$bundle/faceswapd.gz" > "$work/faceswapd"
  chmod +x "$work/faceswapd"
  faceswapd="$work/faceswapd"
elif [ -x "$bundle/faceswapd" ]; then
  faceswapd="$bundle/faceswapd"
else
  echo "no target/gpu-check/faceswapd.gz: run '$0 --build' on the dev machine and carry target/gpu-check" >&2
  exit 1
fi
python="${FSPP_PYTHON:-python3}"
# Isolated daemon folders: the check never touches the user's config, jobs or models.
export XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache"
export XDG_RUNTIME_DIR="$work/run"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

if [ "$software" -eq 1 ]; then
  lvp=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
  if [ ! -f "$lvp" ]; then
    echo "software mode needs Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1" >&2
    exit 1
  fi
  export VK_ICD_FILENAMES="$lvp"
else
  # NVRTC and the CUDA headers from PyTorch's wheels when no CUDA toolkit is installed: cubecl
  # compiles its kernels with NVRTC, and they include cuda_fp16.h and mma.h. PyTorch 2.11's
  # CUDA 13 wheels hold both under site-packages/nvidia/cu13/{include,lib} (CUDA 12 wheels:
  # nvidia/cuda_runtime/include and nvidia/cuda_nvrtc/lib).
  if [ -z "${CUDA_PATH:-}" ] && [ ! -f /usr/local/cuda/include/cuda_fp16.h ]; then
    site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)
    if [ -n "$site" ] && [ -d "$site/nvidia" ]; then
      header=$(find "$site/nvidia" -path '*/include/cuda_fp16.h' | head -1)
      if [ -n "$header" ]; then
        CUDA_PATH="$(dirname "$(dirname "$header")")"
        export CUDA_PATH
      fi
      nvrtc=$(find "$site/nvidia" -name 'libnvrtc.so*' ! -name '*alt*' | head -1)
      if [ -n "$nvrtc" ]; then
        # Also as plain libnvrtc.so, whichever major version the build expected.
        mkdir -p "$work/lib"
        ln -s "$nvrtc" "$work/lib/libnvrtc.so"
        LD_LIBRARY_PATH="$work/lib:$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LD_LIBRARY_PATH
      fi
    fi
  fi
fi

echo "# Faceswap++ GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
fi
echo "mode: $([ "$software" -eq 1 ] && echo 'software (lavapipe + CPU, small sizes)' || echo 'GPU')"
echo
echo '## faceswapd doctor (compute lines)'
echo
echo '```'
"$faceswapd" --no-autostart doctor 2>&1 | grep -iE 'compute|cuda|vulkan|wgpu' || true
echo '```'
echo

check_args=()
if [ "$software" -eq 1 ]; then
  # Smoke on every software GPU; timing on the CPU only (lavapipe takes ~15 s a step).
  check_args=(--quick --software --devices cpu)
fi
status=0
"$faceswapd" --no-autostart gpu-check "${check_args[@]}" | tee "$work/ours.md" || status=$?

echo
echo "## PyTorch, the same SAEHD-DF step on the same device"
echo
if [ "$software" -eq 1 ]; then
  sizes=(64 2 2 64 16 16 8)
  torch_device=cpu
  ours_device=cpu
  precisions=(f32)
else
  sizes=(256 8 10 256 64 64 22)
  torch_device=cuda
  ours_device=cuda
  precisions=(f32 bf16)
fi
script="$repo_root/tests/benches/reference/saehd_df_torch.py"
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "skipped: $python has no torch (set FSPP_PYTHON to one that has)"
else
  echo "| precision | PyTorch ms/step | PyTorch peak | parameters | ours ms/step | ours / PyTorch |"
  echo "|---|---|---|---|---|---|"
  for precision in "${precisions[@]}"; do
    read -r ms peak params < <("$python" "$script" "${sizes[@]}" --device "$torch_device" --precision "$precision")
    # Our SAEHD-DF row for that precision on the same kind of device.
    ours=$(grep -E "^\| SAEHD-DF [^|]*\| ${ours_device}[^|]*\| ${precision} \|" "$work/ours.md" | head -1 | awk -F'|' '{gsub(/ /,"",$6); print $6}')
    ratio=$(awk -v a="${ours:-0}" -v b="$ms" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "—" }')
    echo "| $precision | $ms | $(awk -v p="$peak" 'BEGIN { printf "%.2f GiB", p / 1073741824 }') | $params | ${ours:-—} | $ratio |"
  done
fi
exit "$status"
