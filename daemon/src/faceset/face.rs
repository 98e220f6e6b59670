//! A face as the store records it (box, 68 landmarks, alignment, filter verdict) and the
//! settings recorded beside a store's faces (extraction's, and the landmarks' smoothing over
//! time, which `track` applies).

use serde::{Deserialize, Serialize};

use crate::geometry::{Affine, face_geometry};

/// Extraction settings (defaults follow faceswap's aligner filters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractSettings {
    /// Re-run landmarks on a crop aligned from the first pass (faceswap `-a`, DFL 2nd pass).
    pub second_pass: bool,
    /// Extra jittered landmark runs averaged in (faceswap `-R/--re-feed`).
    pub refeed: u32,
    /// Detections narrower than this many frame pixels are ignored.
    pub min_face_px: f64,
    /// Reject faces smaller than this fraction of the frame's short side (faceswap min_scale).
    pub min_scale: f64,
    /// Reject faces larger than this multiple of the frame's short side (faceswap max_scale).
    pub max_scale: f64,
    /// Reject faces whose aligned landmarks sit further than this from the mean face, in percent
    /// of the aligned face (faceswap "distance").
    pub max_distance: f64,
    /// Reject faces rolled more than this many degrees (faceswap "roll").
    pub max_roll_deg: f64,
    /// Retry rotated 90/270/180° when nothing is found (DFL).
    pub rotate_retry: bool,
    /// In videos, follow each face from the previous frame's landmarks (MediaPipe's video mode)
    /// and run the detector only every `redetect_every` frames or when a face is lost.
    pub track: bool,
    /// Full detection at least this often while tracking (finds faces that enter the shot).
    pub redetect_every: u32,
    /// At most this many faces per frame, the largest kept (DFL's `--max-faces-from-image`);
    /// 0: no limit. While tracking, a frame that already follows this many faces runs no
    /// re-detection (MediaPipe's `max_num_faces` rule: the detector runs only for lost faces).
    #[serde(default)]
    pub max_faces: u32,
}

impl Default for ExtractSettings {
    fn default() -> Self {
        ExtractSettings {
            second_pass: true,
            refeed: 0,
            min_face_px: 16.0,
            min_scale: 0.07,
            max_scale: 2.0,
            max_distance: 22.5,
            max_roll_deg: 45.0,
            rotate_retry: true,
            track: true,
            redetect_every: 10,
            max_faces: 0,
        }
    }
}

/// A face found in a frame, everything in frame pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Detector box `[x0, y0, x1, y1]`.
    pub bbox: [f64; 4],
    /// Detector confidence.
    pub score: f32,
    /// 68 iBUG landmarks.
    pub landmarks: Vec<[f64; 2]>,
    /// Landmarker face-presence score.
    pub presence: f32,
    /// Frame → mean-face ("legacy") alignment matrix.
    pub legacy: Affine,
    /// Mean landmark distance from the mean face, percent of the aligned face.
    pub distance: f64,
    /// Roll in degrees.
    pub roll_deg: f64,
    /// Why the filters rejected it (kept for review), or None.
    pub rejected: Option<String>,
    /// The landmarker's own points in frame pixels (468 FaceMesh or 68 FAN points); not stored,
    /// the 68 are the record.
    #[serde(skip)]
    pub mesh: Vec<[f64; 2]>,
}

impl Face {
    /// Landmarks as a fixed array.
    pub fn landmarks68(&self) -> [[f64; 2]; 68] {
        let mut out = [[0.0; 2]; 68];
        for (o, p) in out.iter_mut().zip(&self.landmarks) {
            *o = *p;
        }
        out
    }
}

impl Face {
    /// A face known only by its box and 68 landmarks (imported from faceswap or DFL): full
    /// scores, not filtered.
    pub fn from_landmarks(bbox: [f64; 4], lm: &[[f64; 2]; 68]) -> Face {
        let (legacy, distance, roll_deg) = face_geometry(lm);
        Face {
            bbox,
            score: 1.0,
            landmarks: lm.to_vec(),
            presence: 1.0,
            legacy,
            distance,
            roll_deg,
            rejected: None,
            mesh: Vec::new(),
        }
    }
}

/// One-Euro filter settings (Casiez et al. 2012), in units of the face's eye distance so they do
/// not depend on the face's size in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    /// Cutoff frequency at rest, Hz: lower smooths more.
    pub min_cutoff: f64,
    /// How fast the cutoff rises with speed (eye distances per second): higher lags less.
    pub beta: f64,
    /// Cutoff of the speed estimate, Hz.
    pub d_cutoff: f64,
}

impl Default for Smoothing {
    /// Chosen on the Pexels clip, frames 240–471 (tests/tests/tracking.rs): jitter −56%, mean
    /// shift from the raw landmarks 1.24% of the eye distance. Of the grid tried, min_cutoff
    /// 1–4 Hz × beta 0.5–12, lower cutoffs or beta smooth more but lag (shift) more: 1 Hz/0.5
    /// gave −77% and 3.3%, 4 Hz/12 gave −43% and 0.75%.
    fn default() -> Self {
        Smoothing {
            min_cutoff: 2.0,
            beta: 6.0,
            d_cutoff: 1.0,
        }
    }
}
