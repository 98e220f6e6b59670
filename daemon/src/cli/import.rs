//! `faceswapd import …`: faceswap .fsa alignments or a DeepFaceLab aligned folder into a new faceset.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use faceswap_options::Centering;
use faceswap_protocol::{ImportJob, ImportSource, JobSpec};

use super::session::*;

/// `faceswapd import …`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A faceswap alignments file, with the video or image folder it was made from.
    Fsa {
        /// The .fsa file.
        alignments: PathBuf,
        /// The video or image folder the alignments describe.
        source: PathBuf,
        /// New faceset folder.
        #[arg(short, long)]
        out: PathBuf,
        /// Aligned face size.
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Centering of the aligned faces.
        #[arg(long, value_enum, ignore_case = true, default_value_t = Centering::Face)]
        centering: Centering,
    },
    /// A DeepFaceLab aligned folder (faces, landmarks, XSeg labels and masks).
    Dfl {
        /// The aligned folder (workspace/data_src/aligned or data_dst/aligned).
        aligned: PathBuf,
        /// New faceset folder.
        #[arg(short, long)]
        out: PathBuf,
    },
}

/// Runs `faceswapd import`.
pub(super) fn run(session: &Session, c: ImportCommand) -> anyhow::Result<ExitCode> {
    let abs = |p: &Path| absolute(p).map(|p| p.display().to_string());
    let (source, out) = match c {
        ImportCommand::Fsa {
            alignments,
            source,
            out,
            size,
            centering,
        } => (
            ImportSource::Fsa {
                alignments: abs(&alignments)?,
                source: abs(&source)?,
                size,
                centering,
            },
            out,
        ),
        ImportCommand::Dfl { aligned, out } => (
            ImportSource::Dfl {
                aligned: abs(&aligned)?,
            },
            out,
        ),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = abs(&out)?;
    let what = format!("import into {out}");
    let mut c = session.connect()?;
    submit_and_follow(
        &mut c,
        JobSpec::Import(ImportJob { source, out }),
        &what,
        false,
    )
}
