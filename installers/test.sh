#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian/Ubuntu machine: installs what is missing, fetches
# the pinned test media and model assets, then runs `cargo test --workspace`. Idempotent.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=installers/deps.sh
source installers/deps.sh

cargo run -q -p faceswapd -- assets fetch
cargo test --workspace "$@"
