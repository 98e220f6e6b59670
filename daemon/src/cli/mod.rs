//! The `faceswapd` command line (clap derive): one file per command, each with its arguments
//! and its run. `serve` runs the service; commands that do work submit a daemon job and follow
//! it; the rest are local tools (config, doctor, assets) or read a faceset.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::paths::Dirs;
use session::Session;

mod alignments;
mod assets;
mod config;
mod convert;
mod doctor;
mod extract;
mod faceset;
mod frames;
mod gpu_check;
mod import;
mod jobs;
mod mask;
mod phaze_a_preset;
mod serve;
mod service;
mod session;
mod shutdown;
mod sort;
mod status;
mod train;
mod values;
mod xseg;

pub use alignments::AlignmentsCommand;
pub use assets::AssetsCommand;
pub use config::ConfigCommand;
pub use convert::ConvertArgs;
pub use extract::ExtractArgs;
pub use faceset::{AverageArgs, FacesetCommand};
pub use frames::{ExtractFramesArgs, FramesCommand};
pub use import::ImportCommand;
pub use jobs::JobsCommand;
pub use mask::{MaskCommand, MaskGenerateArgs, MaskReviewArgs};
pub use phaze_a_preset::PhazeAPresetArgs;
pub use service::ServiceCommand;
pub use sort::SortArgs;
pub use train::TrainArgs;
pub use xseg::{XsegCommand, XsegTrainArgs};

/// Faceswap++ daemon and command line.
#[derive(Debug, Parser)]
#[command(name = "faceswapd", version, about, long_about = None)]
pub struct Cli {
    /// Socket of the daemon (default: per-user runtime dir; env FACESWAPD_SOCKET).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Do not start the daemon when it is not running.
    #[arg(long, global = true)]
    pub no_autostart: bool,
    /// More log output on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what the service units run).
    Serve,
    /// Show the running daemon's status.
    Status,
    /// Stop the running daemon (running jobs become interrupted, resumable).
    Shutdown,
    /// List, inspect, cancel, resume and wait for jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Find, landmark and align faces in a video or image folder (a resumable daemon job).
    Extract(ExtractArgs),
    /// Train a SAEHD or Phaze-A swap model from two facesets (a resumable daemon job; run it
    /// again with a higher --steps to go on).
    Train(Box<TrainArgs>),
    /// Print a shipped Phaze-A preset as TOML, a starting point for `--archi phaze-a:FILE.toml`
    /// (no name: list them).
    PhazeAPreset(PhazeAPresetArgs),
    /// Swap the faces of a video or image folder with a trained model and write the result
    /// (faceswap "convert", DFL "merge"): a video with the source's audio, or PNG/TIFF images.
    Convert(Box<ConvertArgs>),
    /// Work on video frames.
    #[command(subcommand)]
    Frames(FramesCommand),
    /// Make facesets.
    #[command(subcommand)]
    Faceset(FacesetCommand),
    /// Face masks in a faceset's alignments.
    #[command(subcommand)]
    Mask(MaskCommand),
    /// XSeg (DeepFaceLab): train on labelled faces, apply to facesets, manage labels.
    #[command(subcommand)]
    Xseg(XsegCommand),
    /// Show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check every runtime dependency and say how to fix what is missing.
    Doctor,
    /// Measure each GPU backend: does training follow the CPU's, and training-step time and
    /// peak device memory of SAEHD and Phaze-A (what installers/gpu-check.sh runs).
    GpuCheck(crate::gpu_check::GpuCheckArgs),
    /// Test media and model files (pinned by SHA-256).
    #[command(subcommand)]
    Assets(AssetsCommand),
    /// Bring work from faceswap (.fsa alignments) or DeepFaceLab (aligned faces) into a new
    /// faceset.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Work on a faceset's alignments.
    #[command(subcommand)]
    Alignments(AlignmentsCommand),
    /// Sort a faceset's faces (faceswap's sort tool) into a sorted copy or groups.
    Sort(SortArgs),
    /// Run the daemon as a per-user background service (systemd user unit, launchd agent,
    /// logon task).
    #[command(subcommand)]
    Service(ServiceCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faceswapd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let session = Session {
        dirs: Dirs::resolve()?,
        socket: crate::paths::socket(cli.socket.clone())?,
        autostart: !cli.no_autostart,
    };
    if !matches!(cli.command, Command::Serve) {
        crate::logging::init_client(cli.verbose);
    }
    match cli.command {
        Command::Serve => serve::run(&session.dirs, session.socket),
        Command::Status => status::run(&session),
        Command::Shutdown => shutdown::run(&session),
        Command::Jobs(c) => jobs::run(&session, c),
        Command::Extract(a) => extract::run(&session, a),
        Command::Train(a) => train::run(&session, a),
        Command::PhazeAPreset(a) => phaze_a_preset::run(a),
        Command::Convert(a) => convert::run(&session, a),
        Command::Frames(c) => frames::run(&session, c),
        Command::Faceset(c) => faceset::run(&session, c),
        Command::Mask(c) => mask::run(&session, c),
        Command::Xseg(c) => xseg::run(&session, c),
        Command::Config(c) => config::run(&session, c),
        Command::Doctor => doctor::run(&session),
        Command::GpuCheck(a) => gpu_check::run(a),
        Command::Assets(c) => assets::run(&session.dirs, c),
        Command::Import(c) => import::run(&session, c),
        Command::Alignments(c) => alignments::run(&session, c),
        Command::Sort(a) => sort::run(&session, a),
        Command::Service(c) => service::run(c),
    }
}

#[cfg(test)]
mod tests;
