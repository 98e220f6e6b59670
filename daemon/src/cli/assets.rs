//! `faceswapd assets …`: test media and model files, pinned by SHA-256.

use std::process::ExitCode;

use clap::Subcommand;

use crate::assets::{ASSETS, Asset, AssetKind, Obtained};
use crate::cli_output::outln;
use crate::config::LoadedConfig;
use crate::paths::Dirs;

/// `faceswapd assets …`.
#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Every asset, its source package and whether it is cached.
    List,
    /// Fetch assets (all when no selector is given).
    Fetch {
        /// Test media only.
        #[arg(long)]
        media: bool,
        /// Model files only.
        #[arg(long)]
        models: bool,
        /// Runtime libraries only.
        #[arg(long)]
        runtime: bool,
        /// Specific assets by name.
        names: Vec<String>,
    },
    /// Print the cached path of an asset (fails when missing).
    Path {
        /// Asset name.
        name: String,
    },
}

/// Runs `faceswapd assets`.
pub(super) fn run(dirs: &Dirs, cmd: AssetsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AssetsCommand::List => {
            for a in ASSETS {
                let state = if !a.applies_here() {
                    format!("not for {}", crate::assets::platform())
                } else if crate::assets::locate(dirs, a.name).is_ok() {
                    "cached".into()
                } else {
                    "missing".into()
                };
                outln!(
                    "{:<42} {:<8} {:<30} {state}",
                    a.name,
                    format!("{:?}", a.kind).to_lowercase(),
                    a.spec()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AssetsCommand::Path { name } => {
            outln!("{}", crate::assets::locate(dirs, &name)?.display());
            Ok(ExitCode::SUCCESS)
        }
        AssetsCommand::Fetch {
            media,
            models,
            runtime,
            names,
        } => {
            let all = !media && !models && !runtime && names.is_empty();
            let mut wanted: Vec<&'static Asset> = ASSETS
                .iter()
                .filter(|a| a.applies_here())
                .filter(|a| {
                    all || (media && a.kind == AssetKind::Media)
                        || (models && a.kind == AssetKind::Model)
                        || (runtime && a.kind == AssetKind::Runtime)
                })
                .collect();
            for n in &names {
                wanted.push(Asset::by_name(n)?);
            }
            let cfg = LoadedConfig::load(&dirs.config_file())?.config;
            let mirrors = crate::assets::mirrors(&cfg.assets.mirror);
            let result = crate::assets::fetch(dirs, &wanted, &mirrors, |a, r| match r {
                Ok(Obtained::Cached) => outln!("cached      {}", a.name),
                Ok(Obtained::Mirror(p)) => {
                    outln!("mirrored    {} (from {})", a.name, p.display())
                }
                Ok(Obtained::Downloaded(spec)) => outln!("downloaded  {} (from {spec})", a.name),
                Err(e) => outln!("FAILED      {}: {e}", a.name),
            });
            result?;
            if wanted.iter().any(|a| a.kind == AssetKind::Model) {
                crate::assets::convert_models(dirs, |name, what| outln!("{what:<11} {name}"))?;
            }
            outln!("assets are in {}", dirs.cache.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
