//! `faceswapd faceset …`: make facesets (an average faceset for pretraining).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use faceswap_protocol::{AverageJob, JobSpec};

use super::session::*;

/// `faceswapd faceset …`.
#[derive(Debug, Subcommand)]
pub enum FacesetCommand {
    /// A person who does not exist: the average of the faces of one or more facesets (made
    /// by extract with one --size and --centering), written with jittered copies.
    Average(AverageArgs),
}

/// Arguments of `faceset average`.
#[derive(Debug, Args)]
pub struct AverageArgs {
    /// Faceset folders written by `extract`.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output faceset folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Faces to write: the average and jittered copies of it.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Seed of the jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `faceswapd faceset`.
pub(super) fn run(session: &Session, f: FacesetCommand) -> anyhow::Result<ExitCode> {
    let FacesetCommand::Average(a) = f;
    let inputs = a
        .inputs
        .iter()
        .map(|p| absolute(p).map(|p| p.display().to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let out = absolute(&a.out)?.display().to_string();
    let what = format!("average {} into {out}", inputs.join(", "));
    let spec = JobSpec::FacesetAverage(AverageJob {
        inputs,
        out,
        count: a.count as u32,
        seed: a.seed,
    });
    let mut c = session.connect()?;
    submit_and_follow(&mut c, spec, &what, false)
}
