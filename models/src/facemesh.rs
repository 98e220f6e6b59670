//! MediaPipe FaceMesh (468 landmarks) through ONNX Runtime, and the fixed mapping to the 68-point
//! iBUG layout that faceswap and DFL use.

use std::path::Path;

use crate::onnx::{OnnxModel, OnnxRuntimeError};

/// FaceMesh input side in pixels.
pub const FACEMESH_SIZE: usize = 192;
/// Points FaceMesh returns.
pub const FACEMESH_POINTS: usize = 468;

/// FaceMesh index for each iBUG-68 point, in iBUG order. iBUG numbers the subject's right side
/// first (the image-left side of a frontal face), as FaceMesh's low indices do. Chosen point by
/// point on the canonical mesh: jaw contour 0–16, brows 17–26 (upper brow line), nose bridge
/// 27–30 and base 31–35, eye corners and lids 36–47, outer lips 48–59, inner lips 60–67.
pub const IBUG68_FROM_FACEMESH: [usize; 68] = [
    // jaw 0..16 (image left → chin → image right)
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    // right brow 17..21, left brow 22..26
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300, // nose bridge 27..30, nose base 31..35
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    // right eye 36..41 (outer corner, upper lid ×2, inner corner, lower lid ×2)
    33, 160, 158, 133, 153, 144,
    // left eye 42..47 (inner corner, upper lid ×2, outer corner, lower lid ×2)
    362, 385, 387, 263, 373, 380, // outer lips 48..59
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, // inner lips 60..67
    78, 82, 13, 312, 308, 317, 14, 87,
];

/// Landmarks from one FaceMesh run, in the input crop's pixel coordinates (0..192).
#[derive(Debug, Clone)]
pub struct MeshResult {
    /// 468 `(x, y)` points.
    pub points: Vec<[f32; 2]>,
    /// Face presence in [0, 1].
    pub presence: f32,
}

impl MeshResult {
    /// The 68 iBUG points.
    pub fn ibug68(&self) -> [[f32; 2]; 68] {
        let mut out = [[0f32; 2]; 68];
        for (o, &i) in out.iter_mut().zip(IBUG68_FROM_FACEMESH.iter()) {
            *o = self.points[i];
        }
        out
    }
}

/// The FaceMesh model.
pub struct FaceMesh {
    model: OnnxModel,
}

impl FaceMesh {
    /// Loads the ONNX conversion of `face_landmark.tflite`.
    pub fn load(runtime_lib: &Path, model: &Path) -> Result<Self, OnnxRuntimeError> {
        Ok(FaceMesh {
            model: OnnxModel::load(runtime_lib, model, "FaceMesh")?,
        })
    }

    /// Runs on an NCHW tensor `[1, 3, 192, 192]` with values in [0, 1].
    pub fn landmarks(&mut self, input: &[f32]) -> Result<MeshResult, OnnxRuntimeError> {
        let outputs = self
            .model
            .run([1, 3, FACEMESH_SIZE, FACEMESH_SIZE], input)?;
        let pts = outputs.iter().find(|(_, d)| d.len() == FACEMESH_POINTS * 3);
        let flag = outputs.iter().find(|(_, d)| d.len() == 1);
        let (Some((_, pts)), Some((_, flag))) = (pts, flag) else {
            return Err(OnnxRuntimeError::Run {
                model: "FaceMesh".into(),
                reason:
                    "outputs do not have the expected 1404-value landmark and 1-value flag shapes"
                        .into(),
            });
        };
        let points = pts.chunks_exact(3).map(|p| [p[0], p[1]]).collect();
        Ok(MeshResult {
            points,
            presence: 1.0 / (1.0 + (-flag[0]).exp()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_in_range_and_without_repeats() {
        let mut seen = IBUG68_FROM_FACEMESH.to_vec();
        assert!(seen.iter().all(|&i| i < FACEMESH_POINTS));
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 68);
    }
}
