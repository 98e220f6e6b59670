#!/usr/bin/env bash
# Installs what building and running Faceswap++ needs on Debian/Ubuntu. Idempotent: installs
# only what is missing. Sourced by demo.sh and test.sh; safe to run on its own.
set -euo pipefail

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=(
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev
  libavdevice-dev libswresample-dev pkg-config clang libclang-dev python3 python3-pip
  ffmpeg shellcheck systemd
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "system packages: all present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust 1.95 or newer with rustup (https://rustup.rs), then re-run." >&2
  exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 95 ]; then
  echo "Rust $(rustc --version) is too old: Faceswap++ needs 1.95 or newer (rustup update)." >&2
  exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "python3 has no pip: install python3-pip." >&2
  exit 1
fi

# A local copy of the test media (the workspace's ../shared/fixtures), used only when hashes match.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${FACESWAPPP_MIRROR:-}" ] && [ -d "$repo_root/../shared/fixtures" ]; then
  FACESWAPPP_MIRROR="$(cd "$repo_root/../shared/fixtures" && pwd)"
  export FACESWAPPP_MIRROR
fi
