//! `faceswapd jobs …`: list, inspect, cancel, resume and wait for jobs.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use faceswap_protocol::{JobId, Request, Response};

use super::session::*;
use crate::cli_output::outln;

/// `faceswapd jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// All jobs.
    List,
    /// One job in full, with its log tail.
    Show {
        /// Job id.
        id: JobId,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// Job id.
        id: JobId,
    },
    /// Resume a failed, cancelled or interrupted job.
    Resume {
        /// Job id.
        id: JobId,
        /// Return at once instead of following progress.
        #[arg(long)]
        detach: bool,
    },
    /// Follow a job until it ends.
    Wait {
        /// Job id.
        id: JobId,
    },
}

/// Runs `faceswapd jobs`.
pub(super) fn run(session: &Session, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    let mut c = session.connect()?;
    match cmd {
        JobsCommand::List => {
            let Response::Jobs(list) = c.call(&Request::ListJobs)? else {
                bail!("unexpected reply to list");
            };
            if list.is_empty() {
                outln!("no jobs");
            }
            for j in list {
                let progress = match j.progress.total {
                    Some(t) => format!("{}/{t}", j.progress.done),
                    None => j.progress.done.to_string(),
                };
                outln!(
                    "{:>5}  {:<16} {:<12} {:<8} {:>12}  {}",
                    j.id,
                    j.kind,
                    j.state.name(),
                    j.device.as_deref().unwrap_or("-"),
                    progress,
                    j.progress.message
                );
            }
        }
        JobsCommand::Show { id } => print_job(&show(&mut c, id)?),
        JobsCommand::Cancel { id } => {
            c.call(&Request::CancelJob { id })?;
            outln!("job {id}: cancel requested");
        }
        JobsCommand::Resume { id, detach } => {
            c.call(&Request::ResumeJob { id })?;
            outln!("job {id} resumed");
            if !detach {
                return follow(&mut c, id);
            }
        }
        JobsCommand::Wait { id } => return follow(&mut c, id),
    }
    Ok(ExitCode::SUCCESS)
}
