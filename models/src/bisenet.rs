//! Optional BiSeNet face parsing (faceswap's "bisenet-fp" masker) from an ONNX file the user
//! supplies (`masks.bisenet_model`).
//!
//! Expected signature (an export of faceswap's `plugins/extract/mask/bisenet_fp.py` network):
//! - input `[1, 3, 512, 512]` float32 RGB, normalised `(x − mean) / std` per channel;
//! - first output: logits `[1, C, 512, 512]`, C = 5 for faceswap's own weights (0 background,
//!   1 skin, 2 ears, 3 hair, 4 glasses; mean 0.384/0.314/0.279, std 0.324/0.286/0.275) or 19 for
//!   the original CelebAMask-HQ weights (ImageNet mean/std; 1 skin, 2–5 brows and eyes, 6
//!   glasses, 7–9 ears, 10 nose, 11–13 mouth, 17 hair).
//!
//! The mask is the arg-max class falling in the chosen set (face; optionally glasses, ears,
//! hair), as faceswap's post-processing does.

use std::path::Path;

use crate::onnx::{OnnxModel, OnnxRuntimeError};

/// BiSeNet-FP input side.
pub const BISENET_SIZE: usize = 512;

/// Which parts count as the mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BiSeNetParts {
    /// Glasses count as face.
    pub glasses: bool,
    /// Ears count as face.
    pub ears: bool,
    /// Hair counts as face (faceswap stores this as the "head" variant).
    pub hair: bool,
}

/// A loaded BiSeNet-FP model.
pub struct BiSeNetFp {
    model: OnnxModel,
}

impl BiSeNetFp {
    /// Loads a user-supplied BiSeNet-FP ONNX file.
    pub fn load(runtime_lib: &Path, model: &Path) -> Result<Self, OnnxRuntimeError> {
        Ok(BiSeNetFp {
            model: OnnxModel::load(runtime_lib, model, "BiSeNet-FP")?,
        })
    }

    /// The mask (1 inside, 0 outside) of a 512² RGB crop given as bytes, row-major.
    pub fn mask(&mut self, rgb: &[u8], parts: BiSeNetParts) -> Result<Vec<f32>, OnnxRuntimeError> {
        let plane = BISENET_SIZE * BISENET_SIZE;
        let err = |reason: String| OnnxRuntimeError::Run {
            model: "BiSeNet-FP".into(),
            reason,
        };
        if rgb.len() != plane * 3 {
            return Err(err(format!("the crop must be {BISENET_SIZE}² RGB")));
        }
        // The class count decides the weights' normalisation, so run once per layout: the
        // faceswap weights are tried first and the output shape tells which they are.
        let run = |model: &mut OnnxModel, mean: [f32; 3], std: [f32; 3]| {
            let mut input = vec![0f32; 3 * plane];
            for (i, p) in rgb.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    input[c * plane + i] = (p[c] as f32 / 255.0 - mean[c]) / std[c];
                }
            }
            model.run([1, 3, BISENET_SIZE, BISENET_SIZE], &input)
        };
        const FACESWAP: ([f32; 3], [f32; 3]) = ([0.384, 0.314, 0.279], [0.324, 0.286, 0.275]);
        const IMAGENET: ([f32; 3], [f32; 3]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        let mut outputs = run(&mut self.model, FACESWAP.0, FACESWAP.1)?;
        let classes = |o: &[crate::onnx::OutputTensor]| {
            o.first()
                .map(|(s, d)| (s.get(1).map_or(0, |v| (*v).max(0) as usize), d.len()))
                .unwrap_or((0, 0))
        };
        let (mut c, len) = classes(&outputs);
        if c == 19 {
            outputs = run(&mut self.model, IMAGENET.0, IMAGENET.1)?;
            c = classes(&outputs).0;
        }
        if !(c == 5 || c == 19) || len != c * plane {
            return Err(err(format!(
                "the first output must be logits [1, 5 or 19, {BISENET_SIZE}, {BISENET_SIZE}]; got {c} classes"
            )));
        }
        let logits = &outputs[0].1;
        let mut wanted = if c == 5 {
            vec![1]
        } else {
            vec![1, 2, 3, 4, 5, 10, 11, 12, 13]
        };
        if parts.glasses {
            wanted.push(if c == 5 { 4 } else { 6 });
        }
        if parts.ears {
            wanted.extend(if c == 5 { vec![2] } else { vec![7, 8, 9] });
        }
        if parts.hair {
            wanted.push(if c == 5 { 3 } else { 17 });
        }
        Ok((0..plane)
            .map(|i| {
                let best = (0..c)
                    .max_by(|a, b| logits[a * plane + i].total_cmp(&logits[b * plane + i]))
                    .unwrap_or(0);
                if wanted.contains(&best) { 1.0 } else { 0.0 }
            })
            .collect())
    }
}
