//! `faceswapd xseg …`: train XSeg, apply it, manage labels.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use faceswap_protocol::{JobSpec, ToolSpec, XsegTrainJob};

use super::session::*;
use super::values::*;
use crate::cli_output::outln;

/// `faceswapd xseg …`.
#[derive(Debug, Subcommand)]
pub enum XsegCommand {
    /// Train (or resume) an XSeg model on the labelled faces of one or more facesets.
    Train(XsegTrainArgs),
    /// Store an `xseg` mask for every face of a faceset.
    Apply {
        /// Faceset folder.
        faceset: PathBuf,
        /// XSeg model folder.
        #[arg(long)]
        model: PathBuf,
        /// Compute device: auto, cpu, cuda[:N], vulkan[:N] or wgpu[:N] (default: the config's
        /// compute.device).
        #[arg(long, value_parser = parse_device)]
        device: Option<String>,
    },
    /// Copy the labelled faces of a faceset into a folder.
    FetchLabelled {
        /// Faceset folder.
        faceset: PathBuf,
        /// Where to copy them.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Remove every label from a faceset.
    RemoveLabels {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Bring the XSeg labels (and stored XSeg masks) of DeepFaceLab aligned faces into the
    /// matching faces of a faceset (extract the same frames first).
    ImportDfl {
        /// DFL aligned folder (workspace/data_dst/aligned).
        dfl_aligned: PathBuf,
        /// Faceset folder whose faces receive the labels.
        faceset: PathBuf,
    },
}

/// Arguments of `xseg train`.
#[derive(Debug, Args)]
pub struct XsegTrainArgs {
    /// Faceset folders with labelled faces.
    #[arg(required = true)]
    pub facesets: Vec<PathBuf>,
    /// XSeg model folder (created).
    #[arg(long)]
    pub model: PathBuf,
    /// Input side of a new model.
    #[arg(long, default_value_t = 256)]
    pub resolution: u32,
    /// First-level channels of a new model.
    #[arg(long, default_value_t = 32)]
    pub base: u32,
    /// Train until the model has this many steps.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Faces per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 500)]
    pub save_every: u64,
    /// Compute device for this job: auto, cpu, cuda[:N], vulkan[:N] or wgpu[:N] (default: the
    /// config's compute.device).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<String>,
    /// Queue the job and return.
    #[arg(long)]
    pub detach: bool,
}

/// Runs `faceswapd xseg`.
pub(super) fn run(session: &Session, x: XsegCommand) -> anyhow::Result<ExitCode> {
    match x {
        XsegCommand::Train(a) => {
            // A daemon job: it survives the terminal, resumes, and shows in `jobs`.
            let facesets = a
                .facesets
                .iter()
                .map(|f| absolute(f).map(|p| p.display().to_string()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            std::fs::create_dir_all(&a.model)
                .with_context(|| format!("creating {}", a.model.display()))?;
            let model = absolute(&a.model)?;
            let spec = JobSpec::XsegTrain(XsegTrainJob {
                facesets: facesets.clone(),
                model_dir: model.display().to_string(),
                settings: faceswap_protocol::XsegSettings {
                    resolution: a.resolution,
                    base: a.base,
                    steps: a.steps,
                    batch: a.batch as u32,
                    lr: a.lr,
                    save_every: a.save_every,
                    device: a.device.clone(),
                },
            });
            let what = format!(
                "train XSeg to {} steps on {} into {}",
                a.steps,
                facesets.join(", "),
                model.display()
            );
            let mut c = session.connect()?;
            return submit_and_follow(&mut c, spec, &what, a.detach);
        }
        XsegCommand::Apply {
            faceset,
            model,
            device,
        } => {
            let faceset = absolute(&faceset)?.display().to_string();
            let tool = ToolSpec::XsegApply {
                model: absolute(&model)?.display().to_string(),
                device,
            };
            return run_tool(session, faceset, tool);
        }
        XsegCommand::FetchLabelled { faceset, out } => {
            let n = crate::masks::xseg::fetch_labelled(&faceset, &out)
                .map_err(|e| anyhow::anyhow!(e))?;
            outln!("copied {n} labelled faces to {}", out.display());
        }
        XsegCommand::RemoveLabels { faceset } => {
            let n = crate::masks::xseg::remove_labels(&faceset).map_err(|e| anyhow::anyhow!(e))?;
            outln!("removed the labels of {n} faces");
        }
        XsegCommand::ImportDfl {
            dfl_aligned,
            faceset,
        } => {
            let r = crate::import::import_dfl_labels(&dfl_aligned, &faceset)
                .map_err(|e| anyhow::anyhow!(e))?;
            for line in r.unmatched.iter().chain(&r.errors) {
                eprintln!("{line}");
            }
            outln!(
                "{} DFL faces read: labels for {} faces, XSeg masks for {}; {} unmatched, {} unreadable",
                r.files,
                r.labelled,
                r.xseg_masks,
                r.unmatched.len(),
                r.errors.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
