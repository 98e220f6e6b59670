//! Optional "pro" landmarker: FAN 2D (Bulat & Tzimiropoulos 2017, faceswap's and DFL's aligner)
//! from an ONNX file the user supplies (`extract.fan_model`).
//!
//! Expected signature (the `face-alignment` 2DFAN-4 export):
//! - input: `[1, 3, 256, 256]` float32 RGB in [0, 1], the face cropped as DFL does (centre of the
//!   box moved up 12 % of its height, side 200 × (w + h) / 195);
//! - output: heatmaps `[1, 68, 64, 64]` (if the export keeps every hourglass stack, the last
//!   68-channel output is used).
//!
//! Each landmark is the heatmap's arg-max moved a quarter pixel towards the larger neighbour
//! (face-alignment `get_preds_fromhm`), at crop pixel `(index + 0.5) × 4`.

use std::path::Path;

use crate::onnx::{OnnxModel, OnnxRuntimeError};

/// FAN input side.
pub const FAN_SIZE: usize = 256;
const HEATMAP: usize = 64;

// Unlike f32::signum, zero for equal neighbours (torch.sign).
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// A loaded FAN model.
pub struct Fan {
    model: OnnxModel,
}

/// 68 landmarks in the 256-pixel crop, and each heatmap's peak value.
#[derive(Debug, Clone)]
pub struct FanResult {
    /// `(x, y)` per iBUG point.
    pub points: Vec<[f32; 2]>,
    /// Peak heatmap value per point (a confidence).
    pub peaks: Vec<f32>,
}

impl Fan {
    /// Loads a user-supplied FAN ONNX file.
    pub fn load(runtime_lib: &Path, model: &Path) -> Result<Self, OnnxRuntimeError> {
        Ok(Fan {
            model: OnnxModel::load(runtime_lib, model, "FAN")?,
        })
    }

    /// Runs on a `[1, 3, 256, 256]` RGB [0, 1] crop.
    pub fn landmarks(&mut self, input: &[f32]) -> Result<FanResult, OnnxRuntimeError> {
        let outputs = self.model.run([1, 3, FAN_SIZE, FAN_SIZE], input)?;
        let Some((_, heat)) = outputs
            .iter()
            .rev()
            .find(|(_, d)| d.len() == 68 * HEATMAP * HEATMAP)
        else {
            return Err(OnnxRuntimeError::Run {
                model: "FAN".into(),
                reason: "no [1, 68, 64, 64] heatmap output".into(),
            });
        };
        let mut points = Vec::with_capacity(68);
        let mut peaks = Vec::with_capacity(68);
        for hm in heat.chunks_exact(HEATMAP * HEATMAP) {
            let (best, peak) = hm
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            let (x, y) = (best % HEATMAP, best / HEATMAP);
            let at = |x: usize, y: usize| hm[y * HEATMAP + x];
            let mut fx = x as f32;
            let mut fy = y as f32;
            if x > 0 && x + 1 < HEATMAP {
                fx += 0.25 * sign(at(x + 1, y) - at(x - 1, y));
            }
            if y > 0 && y + 1 < HEATMAP {
                fy += 0.25 * sign(at(x, y + 1) - at(x, y - 1));
            }
            let k = (FAN_SIZE / HEATMAP) as f32;
            points.push([(fx + 0.5) * k, (fy + 0.5) * k]);
            peaks.push(peak);
        }
        Ok(FanResult { points, peaks })
    }
}
