#!/usr/bin/env bash
# Where install.sh puts things and uninstall.sh finds them. Sourced; `layout user|system` sets
# plugin_root, bundle_dir, daemon_path, unit_path, env_file (user mode only) and manifest_file.

layout() {
    case "$1" in
        user)
            local home="${HOME:?set HOME to install for a user}"
            local data="${XDG_DATA_HOME:-$home/.local/share}"
            local config="${XDG_CONFIG_HOME:-$home/.config}"
            plugin_root="$data/faceswappp/OFX/Plugins"
            daemon_path="$home/.local/bin/faceswapd"
            unit_path="$config/systemd/user/faceswapd.service"
            env_file="$config/environment.d/60-faceswappp.conf"
            manifest_file="$data/faceswappp/install-manifest.txt"
            ;;
        system)
            # /usr/OFX/Plugins is where every OFX host looks on Linux.
            plugin_root="/usr/OFX/Plugins"
            daemon_path="/usr/local/bin/faceswapd"
            unit_path="/usr/lib/systemd/user/faceswapd.service"
            env_file=""
            manifest_file="/usr/local/share/faceswappp/install-manifest.txt"
            ;;
        *)
            echo "unknown install mode $1 (user or system)" >&2
            return 2
            ;;
    esac
    bundle_dir="$plugin_root/Faceswap.ofx.bundle"
    export plugin_root bundle_dir daemon_path unit_path env_file manifest_file
}
