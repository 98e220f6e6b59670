//! `faceswapd sort`: faceswap's sort tool, as a daemon job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use faceswap_options::SortMethod;

use super::session::*;

/// Arguments of `sort`.
#[derive(Debug, Args)]
pub struct SortArgs {
    /// Faceset folder.
    pub faceset: PathBuf,
    /// How to order the faces.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SortMethod::Face)]
    pub by: SortMethod,
    /// Where the sorted copies go (the faceset's own files are not renamed).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Split the order into this many group folders (1 = one sorted folder).
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
}

/// Runs `faceswapd sort`.
pub(super) fn run(session: &Session, a: SortArgs) -> anyhow::Result<ExitCode> {
    let SortArgs {
        faceset,
        by,
        out,
        groups,
    } = a;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let faceset = absolute(&faceset)?.display().to_string();
    let tool = faceswap_protocol::ToolSpec::Sort {
        by,
        out: absolute(&out)?.display().to_string(),
        groups: groups as u32,
    };
    run_tool(session, faceset, tool)
}
