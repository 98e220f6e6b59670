//! `faceswapd phaze-a-preset`: print a shipped Phaze-A preset, or convert a faceswap one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cli_output::{out, outln};

/// Arguments of `phaze-a-preset`.
#[derive(Debug, Args)]
pub struct PhazeAPresetArgs {
    /// dfl-saehd-df, dfl-saehd-liae, iae or fspp-256.
    pub name: Option<String>,
    /// Convert a faceswap Phaze-A preset (its GUI's JSON) instead; notes on what does not
    /// carry over are printed as comments.
    #[arg(long, conflicts_with = "name")]
    pub from_faceswap: Option<PathBuf>,
}

/// Runs `faceswapd phaze-a-preset`.
pub(super) fn run(a: PhazeAPresetArgs) -> anyhow::Result<ExitCode> {
    match (a.name, a.from_faceswap) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (opts, notes) = faceswap_models::PhazeAOptions::from_faceswap_json(&text)
                .with_context(|| path.display().to_string())?;
            outln!("# Converted from faceswap preset {}", path.display());
            for note in notes {
                outln!("# note: {note}");
            }
            out!("{}", opts.to_toml());
        }
        (None, None) => {
            for (name, _) in faceswap_models::phaze_a::PRESETS {
                outln!("{name}");
            }
        }
        (Some(name), None) => {
            out!("{}", faceswap_models::phaze_a::preset_text(&name)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
