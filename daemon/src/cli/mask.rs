//! `faceswapd mask …`: generate stored masks and review them.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use faceswap_options::LandmarkMask;
use faceswap_protocol::{BisenetMask, ToolSpec};

use super::session::*;
use crate::cli_output::outln;

/// `faceswapd mask …`.
#[derive(Debug, Subcommand)]
pub enum MaskCommand {
    /// Add landmark masks (faceswap's components / extended, or the hull) to every face.
    Generate(MaskGenerateArgs),
    /// A review sheet: the aligned faces with the mask the rules choose tinted over them.
    Review(MaskReviewArgs),
}

/// Arguments of `mask generate`.
#[derive(Debug, Args)]
pub struct MaskGenerateArgs {
    /// A faceset folder written by `extract`.
    pub faceset: PathBuf,
    /// Which landmark masks.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [LandmarkMask::Components, LandmarkMask::Extended])]
    pub kinds: Vec<LandmarkMask>,
    /// Also a BiSeNet-FP mask from this ONNX file (faceswap's bisenet-fp; see the docs for the
    /// expected signature). Default: the config's `masks.bisenet_model`, if set.
    #[arg(long)]
    pub bisenet: Option<PathBuf>,
    /// Do not run BiSeNet-FP even when the config names a model.
    #[arg(long, conflicts_with = "bisenet")]
    pub no_bisenet: bool,
    /// BiSeNet: hair counts as face (stored as bisenet-fp_head); also `masks.bisenet_hair`.
    #[arg(long)]
    pub hair: bool,
    /// BiSeNet: ears count as face; also `masks.bisenet_ears`.
    #[arg(long)]
    pub ears: bool,
    /// BiSeNet: glasses count as face; also `masks.bisenet_glasses` (on by default).
    #[arg(long)]
    pub glasses: bool,
}

impl MaskGenerateArgs {
    /// The BiSeNet-FP model and parts to run: the flags, else the config's `[masks]`.
    /// The BiSeNet-FP mask to ask the daemon for (it fills what is left open from its
    /// `masks.*` config); `None` with `--no-bisenet`.
    pub(super) fn bisenet_request(&self) -> Option<BisenetMask> {
        (!self.no_bisenet).then(|| BisenetMask {
            model: self.bisenet.as_ref().map(|p| p.display().to_string()),
            hair: self.hair,
            ears: self.ears,
            glasses: self.glasses,
        })
    }
}

/// Arguments of `mask review`.
#[derive(Debug, Args)]
pub struct MaskReviewArgs {
    /// A faceset folder written by `extract`.
    pub faceset: PathBuf,
    /// Which mask per frame, e.g. "10-50: xseg; otherwise: extended; fallback: components"
    /// (ranges inclusive).
    #[arg(long, default_value = "otherwise: components")]
    pub rules: String,
    /// The PNG to write.
    #[arg(short, long)]
    pub out: PathBuf,
    /// At most this many faces.
    #[arg(long, default_value_t = 64)]
    pub max: usize,
}

/// Runs `faceswapd mask`.
pub(super) fn run(session: &Session, m: MaskCommand) -> anyhow::Result<ExitCode> {
    match m {
        MaskCommand::Generate(a) => generate(session, a),
        MaskCommand::Review(a) => review(a),
    }
}

fn generate(session: &Session, a: MaskGenerateArgs) -> anyhow::Result<ExitCode> {
    let faceset = absolute(&a.faceset)?.display().to_string();
    let mut bisenet = a.bisenet_request();
    if let Some(model) = bisenet.as_mut().and_then(|b| b.model.as_mut()) {
        *model = absolute(Path::new(model))?.display().to_string();
    }
    let tool = ToolSpec::MaskGenerate {
        kinds: a.kinds.clone(),
        bisenet,
    };
    run_tool(session, faceset, tool)
}

fn review(a: MaskReviewArgs) -> anyhow::Result<ExitCode> {
    let rules = crate::masks::rules::MaskRules::parse(&a.rules).map_err(|e| anyhow::anyhow!(e))?;
    let n = crate::masks::review_grid(&a.faceset, &rules, &a.out, a.max)
        .map_err(|e| anyhow::anyhow!(e))?;
    outln!("{n} faces with their masks: {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
