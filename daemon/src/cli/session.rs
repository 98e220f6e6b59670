//! The client side every command shares: its session, submitting a job and following it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use faceswap_protocol::{
    Connection, JobId, JobRecord, JobSpec, JobState, Request, Response, SocketPath, ToolJob,
    ToolSpec,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli_output::outln;
use crate::paths::Dirs;

/// What every command gets: the folders, the daemon's socket, and whether to start the daemon.
pub(super) struct Session {
    /// The per-user folders.
    pub dirs: Dirs,
    /// The daemon's socket.
    pub socket: SocketPath,
    /// Start the daemon when it is not running.
    pub autostart: bool,
}

impl Session {
    /// A connection to the daemon (started when missing and allowed).
    pub fn connect(&self) -> anyhow::Result<Connection> {
        self.connect_with(self.autostart)
    }

    /// A connection to a running daemon only.
    pub fn connect_running(&self) -> anyhow::Result<Connection> {
        self.connect_with(false)
    }

    fn connect_with(&self, autostart: bool) -> anyhow::Result<Connection> {
        crate::client::connect(
            &self.socket,
            autostart,
            &self.dirs.logs().join(crate::logging::LOG_FILE),
        )
    }
}

/// Queues a faceset tool job (`alignments …`, `sort`, `mask generate`, `xseg apply`) and
/// follows it.
pub(super) fn run_tool(
    session: &Session,
    faceset: String,
    tool: ToolSpec,
) -> anyhow::Result<ExitCode> {
    let what = format!("{} on {faceset}", tool.name());
    let mut c = session.connect()?;
    submit_and_follow(
        &mut c,
        JobSpec::Tool(ToolJob { faceset, tool }),
        &what,
        false,
    )
}

/// Queues a job, then follows it unless `detach`.
pub(super) fn submit_and_follow(
    c: &mut Connection,
    spec: JobSpec,
    what: &str,
    detach: bool,
) -> anyhow::Result<ExitCode> {
    let Response::JobSubmitted { id } = c.call(&Request::SubmitJob { spec })? else {
        bail!("unexpected reply to submit");
    };
    outln!("job {id} queued: {what}");
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    follow(c, id)
}

/// The job's input and output folder as absolute paths (the daemon has its own working
/// folder); the output folder is created.
pub(super) fn input_and_output(input: &Path, out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let input = absolute(input).with_context(|| format!("input {}", input.display()))?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating output folder {}", out.display()))?;
    Ok((input, absolute(out)?))
}

/// `p` made absolute; it must exist.
pub(super) fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("{} does not exist", p.display()))
}

pub(super) fn show(c: &mut Connection, id: JobId) -> anyhow::Result<JobRecord> {
    match c.call(&Request::ShowJob { id })? {
        Response::Job(r) => Ok(*r),
        _ => bail!("unexpected reply to show"),
    }
}

pub(super) fn print_job(r: &JobRecord) {
    outln!("job {} ({}): {}", r.id, r.spec.kind(), r.state.name());
    outln!("spec: {:?}", r.spec);
    match r.progress.total {
        Some(t) => outln!("progress: {}/{t} {}", r.progress.done, r.progress.message),
        None => outln!("progress: {} {}", r.progress.done, r.progress.message),
    }
    outln!("resumes: {}", r.resumes);
    if let Some(device) = &r.device {
        outln!("device: {device}");
    }
    if let Some(e) = &r.error {
        outln!("error: {e}");
    }
    outln!("log:");
    for line in &r.log_tail {
        outln!("  {line}");
    }
}

/// Follows a job with a progress bar until it ends; the exit status says how it ended.
pub(super) fn follow(c: &mut Connection, id: JobId) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} job {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    loop {
        let r = show(c, id)?;
        if let Some(t) = r.progress.total {
            bar.set_length(t);
        }
        bar.set_position(r.progress.done);
        bar.set_message(r.progress.message.clone());
        if r.state.is_final() {
            bar.finish_and_clear();
            outln!("job {id}: {}", r.state.name());
            if let Some(e) = &r.error {
                outln!("error: {e}");
            }
            // The last run's log lines (after its "started").
            let from = r
                .log_tail
                .iter()
                .rposition(|l| l == "started")
                .map_or(0, |i| i + 1);
            for line in r.log_tail[from..].iter().filter(|l| l.as_str() != "done") {
                outln!("  {line}");
            }
            return Ok(if r.state == JobState::Done {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
