//! `faceswapd alignments …`: faceswap's alignments tools, as daemon jobs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use faceswap_options::Centering;

use super::session::*;
use crate::cli_output::outln;

/// `faceswapd alignments …`.
#[derive(Debug, Subcommand)]
pub enum AlignmentsCommand {
    /// (Re)write the aligned face files of a faceset from its source frames, at a size and
    /// centering (faceswap's alignments "extract").
    Extract {
        /// Faceset folder.
        faceset: PathBuf,
        /// The video or image folder its alignments describe.
        #[arg(long)]
        source: PathBuf,
        /// Aligned face size.
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Centering.
        #[arg(long, value_enum, ignore_case = true, default_value_t = Centering::Face)]
        centering: Centering,
    },
    /// Each track of a video faceset: frames, lost ranges, low-confidence frames, jitter.
    Tracks {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Remove from the alignments the faces whose files you deleted from faces/.
    RemoveFaces {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Frames with each face's box and landmarks drawn, for review.
    Draw {
        /// Faceset folder.
        faceset: PathBuf,
        /// The video or image folder its alignments describe.
        #[arg(long)]
        source: PathBuf,
        /// Output folder.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Frames of the source that are not in the alignments.
    MissingFrames {
        /// Faceset folder.
        faceset: PathBuf,
        /// The video or image folder.
        #[arg(long)]
        source: PathBuf,
    },
    /// Frames with more than one face.
    MultiFaces {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Frames without a face.
    NoFaces {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Smooth each track's landmarks over time (then rewrite the faces with `extract`).
    Spatial {
        /// Faceset folder.
        faceset: PathBuf,
    },
}

/// Runs `faceswapd alignments`.
pub(super) fn run(session: &Session, c: AlignmentsCommand) -> anyhow::Result<ExitCode> {
    use faceswap_protocol::ToolSpec;
    let abs = |p: &Path| absolute(p).map(|p| p.display().to_string());
    let out_dir = |p: &Path| -> anyhow::Result<String> {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        abs(p)
    };
    let (faceset, tool) = match c {
        AlignmentsCommand::Extract {
            faceset,
            source,
            size,
            centering,
        } => (
            faceset,
            ToolSpec::Extract {
                source: abs(&source)?,
                size,
                centering,
            },
        ),
        AlignmentsCommand::RemoveFaces { faceset } => (faceset, ToolSpec::RemoveFaces),
        AlignmentsCommand::Draw {
            faceset,
            source,
            out,
        } => (
            faceset,
            ToolSpec::Draw {
                source: abs(&source)?,
                out: out_dir(&out)?,
            },
        ),
        AlignmentsCommand::MissingFrames { faceset, source } => (
            faceset,
            ToolSpec::MissingFrames {
                source: abs(&source)?,
            },
        ),
        AlignmentsCommand::MultiFaces { faceset } => (faceset, ToolSpec::MultiFaces),
        AlignmentsCommand::NoFaces { faceset } => (faceset, ToolSpec::NoFaces),
        AlignmentsCommand::Spatial { faceset } => (faceset, ToolSpec::Spatial),
        // A read of the store, not a job.
        AlignmentsCommand::Tracks { faceset } => {
            let store = crate::faceset::store::Alignments::load(
                &faceset.join(crate::faceset::ALIGNMENTS_FILE),
            )?;
            let reports = crate::track::track_reports(&store);
            if reports.is_empty() {
                outln!("no tracks (not a video faceset, or extracted before tracks)");
            }
            for r in reports {
                outln!("{}", r.line());
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let faceset = abs(&faceset)?;
    run_tool(session, faceset, tool)
}
