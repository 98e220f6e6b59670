//! Optional "pro" detector: S3FD (Zhang et al. 2017, as used by faceswap and DFL) from an ONNX file
//! the user supplies (`extract.s3fd_model`).
//!
//! Expected signature (the SFD export of the `face-alignment` project and of DFL's S3FD):
//! - input: `[1, 3, S, S]` float32, **BGR**, 0..255 minus the per-channel mean (104, 117, 123);
//!   we feed the frame letterboxed to `S` = [`S3FD_SIZE`];
//! - outputs: 12 tensors, `(class, regression)` pairs for strides 4, 8, 16, 32, 64, 128, in that
//!   order: class `[1, 2, S/stride, S/stride]` (background, face logits), regression
//!   `[1, 4, S/stride, S/stride]` (dx, dy, dw, dh against an anchor of 4 × stride, variances 0.1 / 0.2).
//!
//! Decoding and thresholds follow DFL (facelib/S3FDExtractor.py): NMS at IoU 0.3, score ≥ 0.5.

use std::path::Path;

use crate::blazeface::iou;
use crate::onnx::{OnnxModel, OnnxRuntimeError};

/// Side of the square the frame is letterboxed to.
pub const S3FD_SIZE: usize = 640;
/// Per-channel BGR mean subtracted from the input.
pub const S3FD_MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
/// Minimum face score kept (DFL).
pub const S3FD_MIN_SCORE: f32 = 0.5;

/// A face box from S3FD, normalised to the input square ([0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct S3fdBox {
    /// `[xmin, ymin, xmax, ymax]`.
    pub bbox: [f32; 4],
    /// Face probability.
    pub score: f32,
}

/// A loaded S3FD model.
pub struct S3fd {
    model: OnnxModel,
}

impl S3fd {
    /// Loads a user-supplied S3FD ONNX file.
    pub fn load(runtime_lib: &Path, model: &Path) -> Result<Self, OnnxRuntimeError> {
        Ok(S3fd {
            model: OnnxModel::load(runtime_lib, model, "S3FD")?,
        })
    }

    /// Runs on `[1, 3, 640, 640]` BGR mean-subtracted input.
    pub fn detect(&mut self, input: &[f32]) -> Result<Vec<S3fdBox>, OnnxRuntimeError> {
        let outputs = self.model.run([1, 3, S3FD_SIZE, S3FD_SIZE], input)?;
        let wrong = |reason: String| OnnxRuntimeError::Run {
            model: "S3FD".into(),
            reason: format!("{reason}; see the expected signature in `faceswapd config default`"),
        };
        if outputs.len() != 12 {
            return Err(wrong(format!("{} outputs, expected 12", outputs.len())));
        }
        let mut found = Vec::new();
        for pair in outputs.chunks_exact(2) {
            let ((cs, cls), (rs, reg)) = (&pair[0], &pair[1]);
            if cs.len() != 4 || rs.len() != 4 || cs[1] != 2 || rs[1] != 4 || cs[2..] != rs[2..] {
                return Err(wrong(format!("output shapes {cs:?} / {rs:?}")));
            }
            let (h, w) = (cs[2] as usize, cs[3] as usize);
            if h == 0 || w == 0 {
                continue;
            }
            let stride = S3FD_SIZE as f32 / h as f32;
            let anchor = 4.0 * stride;
            let plane = h * w;
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let (bg, fg) = (cls[i], cls[plane + i]);
                    let score = 1.0 / (1.0 + (bg - fg).exp());
                    if score < S3FD_MIN_SCORE {
                        continue;
                    }
                    let cx = (x as f32 + 0.5) * stride + reg[i] * 0.1 * anchor;
                    let cy = (y as f32 + 0.5) * stride + reg[plane + i] * 0.1 * anchor;
                    let bw = anchor * (reg[2 * plane + i] * 0.2).exp();
                    let bh = anchor * (reg[3 * plane + i] * 0.2).exp();
                    let s = S3FD_SIZE as f32;
                    found.push(S3fdBox {
                        bbox: [
                            (cx - bw / 2.0) / s,
                            (cy - bh / 2.0) / s,
                            (cx + bw / 2.0) / s,
                            (cy + bh / 2.0) / s,
                        ],
                        score,
                    });
                }
            }
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<S3fdBox> = Vec::new();
        for b in found {
            if kept.iter().all(|k| iou(&k.bbox, &b.bbox) <= 0.3) {
                kept.push(b);
            }
        }
        Ok(kept)
    }
}
