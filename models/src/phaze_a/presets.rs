//! The Phaze-A presets shipped with Faceswap++.

use super::*;

/// The presets shipped with Faceswap++ (`models/presets/phaze_a/*.toml`).
pub const PRESETS: [(&str, &str); 4] = [
    (
        "dfl-saehd-df",
        include_str!("../../presets/phaze_a/dfl-saehd-df.toml"),
    ),
    (
        "dfl-saehd-liae",
        include_str!("../../presets/phaze_a/dfl-saehd-liae.toml"),
    ),
    ("iae", include_str!("../../presets/phaze_a/iae.toml")),
    (
        "fspp-256",
        include_str!("../../presets/phaze_a/fspp-256.toml"),
    ),
];

/// The TOML of the shipped preset of this name.
pub fn preset_text(name: &str) -> Result<&'static str, PhazeAError> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            PhazeAError(format!(
                "no preset named {name:?}; the presets are {}, or give a preset file's path",
                names.join(", ")
            ))
        })
}
