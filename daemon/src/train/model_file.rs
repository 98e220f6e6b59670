//! The model folder's own description (`model.toml`: architecture, seed, centering) and the
//! network options a job's settings name.

use faceswap_models::{ModelOptions, PhazeAOptions, SaehdOptions};
use faceswap_protocol::TrainSettings;
use serde::{Deserialize, Serialize};

use crate::geometry::Centering;

/// The model folder's description of the model (fixed at creation).
pub const MODEL_FILE: &str = "model.toml";
/// The loss log: `step,loss_a,loss_b,lr,ms` per step.
pub const LOSS_LOG: &str = "loss.csv";
/// The newest preview image.
pub const PREVIEW: &str = "preview.png";

/// What `model.toml` holds: the architecture and the seed, fixed when the model is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// `df`/`liae` with `u`/`d`/`t`, or `phaze-a[:preset name or file]`.
    pub archi: String,
    /// Face resolution.
    pub resolution: u32,
    /// Bottleneck width.
    pub ae_dims: u32,
    /// Encoder width.
    pub e_dims: u32,
    /// Decoder width.
    pub d_dims: u32,
    /// Mask decoder width.
    pub d_mask_dims: u32,
    /// The run's seed (weights and every random draw).
    pub seed: u64,
    /// The Faceswap++ version that created it.
    pub created_by: String,
    /// The aligned-face centering of the facesets it learned from (`f`, `wf`, `legacy`, …);
    /// merge crops destination faces the same way. Recorded by the first training run.
    #[serde(default)]
    pub centering: Option<String>,
    /// Phaze-A: every option, resolved from the preset when the model was created (later
    /// edits to the preset do not change this model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phaze_a: Option<PhazeAOptions>,
}

/// The Phaze-A options `archi` names (`phaze-a`: faceswap's defaults; `phaze-a:NAME`: a shipped
/// preset; `phaze-a:PATH.toml`: a preset file; `phaze-a:PATH.json`: a faceswap GUI preset), at
/// `resolution` (0: the preset's); `None` for SAEHD.
pub fn phaze_a_options(archi: &str, resolution: u32) -> Result<Option<PhazeAOptions>, String> {
    let Some(rest) = archi.strip_prefix("phaze-a") else {
        return Ok(None);
    };
    let opts = match rest.strip_prefix(':') {
        None if rest.is_empty() => {
            let o = PhazeAOptions::default();
            o.check().map_err(|e| e.to_string())?;
            o
        }
        None => {
            return Err(format!(
                "unknown architecture {archi:?}; use phaze-a or phaze-a:PRESET"
            ));
        }
        Some(name) if name.ends_with(".json") => {
            let text = std::fs::read_to_string(name)
                .map_err(|e| format!("faceswap preset file {name}: {e}"))?;
            let (opts, notes) =
                PhazeAOptions::from_faceswap_json(&text).map_err(|e| format!("{name}: {e}"))?;
            for note in notes {
                tracing::info!("{name}: {note}");
            }
            opts
        }
        Some(name) if name.ends_with(".toml") || name.contains(std::path::MAIN_SEPARATOR) => {
            let text = std::fs::read_to_string(name)
                .map_err(|e| format!("Phaze-A preset file {name}: {e}"))?;
            PhazeAOptions::from_toml(&text).map_err(|e| format!("{name}: {e}"))?
        }
        Some(name) => PhazeAOptions::preset(name).map_err(|e| e.to_string())?,
    };
    let opts = if resolution == 0 || resolution as usize == opts.output_size {
        opts
    } else {
        opts.at_resolution(resolution as usize)
            .map_err(|e| e.to_string())?
    };
    // Presets, files and resizes are checked where they are made.
    Ok(Some(opts))
}

impl ModelFile {
    pub(super) fn from_settings(s: &TrainSettings) -> Result<ModelFile, String> {
        let phaze_a = phaze_a_options(&s.archi, s.resolution)?;
        Ok(ModelFile {
            archi: s.archi.clone(),
            resolution: phaze_a
                .as_ref()
                .map_or(s.resolution, |o| o.output_size as u32),
            ae_dims: s.ae_dims,
            e_dims: s.e_dims,
            d_dims: s.d_dims,
            d_mask_dims: s.d_mask_dims,
            seed: s.seed,
            created_by: format!("Faceswap++ {}", env!("CARGO_PKG_VERSION")),
            centering: None,
            phaze_a,
        })
    }

    pub(super) fn same_architecture(&self, other: &ModelFile) -> bool {
        if self.phaze_a.is_some() || other.phaze_a.is_some() {
            return self.phaze_a == other.phaze_a;
        }
        (
            &self.archi,
            self.resolution,
            self.ae_dims,
            self.e_dims,
            self.d_dims,
            self.d_mask_dims,
        ) == (
            &other.archi,
            other.resolution,
            other.ae_dims,
            other.e_dims,
            other.d_dims,
            other.d_mask_dims,
        )
    }

    /// The centering merge must crop with; the error says what the model file lacks.
    pub fn centering(&self) -> Result<Centering, String> {
        let name = self.centering.as_deref().ok_or(
            "model.toml does not say which face centering the model learned; train it at least one step with this version (it records the facesets' centering)",
        )?;
        name.parse::<Centering>()
            .map_err(|e| format!("model.toml names an {e}"))
    }

    /// One line naming the architecture.
    pub fn describe(&self) -> String {
        if self.phaze_a.is_some() {
            return format!("{} {} px", self.archi, self.resolution);
        }
        format!(
            "{} {} px, ae {} e {} d {} mask {}",
            self.archi, self.resolution, self.ae_dims, self.e_dims, self.d_dims, self.d_mask_dims
        )
    }

    /// The network options.
    pub fn options(&self) -> Result<ModelOptions, String> {
        if let Some(o) = &self.phaze_a {
            o.check().map_err(|e| e.to_string())?;
            return Ok(ModelOptions::PhazeA(o.clone()));
        }
        SaehdOptions::parse(
            &self.archi,
            self.resolution as usize,
            self.ae_dims as usize,
            self.e_dims as usize,
            self.d_dims as usize,
            self.d_mask_dims as usize,
        )
        .map(ModelOptions::Saehd)
    }
}

/// The network options a job's settings ask for (an error names what is wrong).
pub fn network_options(s: &TrainSettings) -> Result<ModelOptions, String> {
    ModelFile::from_settings(s)?.options()
}
