//! Per-frame extraction: detect (BlazeFace short + full range, rotated retries), 68 landmarks
//! (FaceMesh mapped to iBUG), second pass and re-feed, alignment, filters.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faceswap_models::blazeface::iou;
use faceswap_models::{
    BlazeFace, BlazeFaceKind, FaceMesh, MeshResult, OnnxRuntimeError, RawDetection,
};
use serde::{Deserialize, Serialize};

use super::geometry::{Affine, MEAN_FACE_51, legacy_matrix};
use super::image::{Pyramid, letterbox, roi_map, rotate};
use crate::media::RgbFrame;

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
        }
    }
}

/// Where the extractor's model files are.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// ONNX Runtime shared library.
    pub runtime: PathBuf,
    /// BlazeFace short range (ONNX).
    pub short_range: PathBuf,
    /// BlazeFace full range (ONNX).
    pub full_range: PathBuf,
    /// FaceMesh (ONNX).
    pub face_mesh: PathBuf,
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
    /// The 468 FaceMesh points in frame pixels (not stored: the 68 are the record).
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

/// Time spent per stage.
#[derive(Debug, Clone, Default)]
pub struct StageTimings {
    /// Detection (both models, retries).
    pub detect: Duration,
    /// Landmarks (all passes).
    pub landmarks: Duration,
    /// Alignment and filters.
    pub align: Duration,
}

impl StageTimings {
    /// Adds another frame's timings.
    pub fn add(&mut self, o: &StageTimings) {
        self.detect += o.detect;
        self.landmarks += o.landmarks;
        self.align += o.align;
    }
}

/// A detection in frame pixels.
#[derive(Debug, Clone)]
struct FrameDetection {
    bbox: [f64; 4],
    keypoints: [[f64; 2]; 6],
    score: f32,
}

/// The loaded extractor.
pub struct Extractor {
    short: BlazeFace,
    full: BlazeFace,
    mesh: FaceMesh,
    settings: ExtractSettings,
    tensor: Vec<f32>,
}

impl Extractor {
    /// Loads the three models.
    pub fn load(files: &ModelFiles, settings: ExtractSettings) -> Result<Self, OnnxRuntimeError> {
        Ok(Extractor {
            short: BlazeFace::load(
                &files.runtime,
                &files.short_range,
                BlazeFaceKind::ShortRange,
            )?,
            full: BlazeFace::load(&files.runtime, &files.full_range, BlazeFaceKind::FullRange)?,
            mesh: FaceMesh::load(&files.runtime, &files.face_mesh)?,
            settings,
            tensor: Vec::new(),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &ExtractSettings {
        &self.settings
    }

    /// Finds, landmarks, aligns and filters every face in a frame.
    pub fn process(
        &mut self,
        pyr: &Pyramid,
        timings: &mut StageTimings,
    ) -> Result<Vec<Face>, OnnxRuntimeError> {
        let t = Instant::now();
        let dets = self.detect(pyr)?;
        timings.detect += t.elapsed();
        let mut faces = Vec::with_capacity(dets.len());
        for det in dets {
            let t = Instant::now();
            let (mut landmarks, presence) = self.landmarks_from_detection(pyr, &det)?;
            if self.settings.second_pass && presence >= 0.5 {
                let (again, p2) = self.landmarks_from_landmarks(pyr, &landmarks)?;
                if p2 >= 0.5 {
                    landmarks = again;
                }
            }
            timings.landmarks += t.elapsed();
            let t = Instant::now();
            let face = self.align(pyr.base(), det, &landmarks, presence);
            timings.align += t.elapsed();
            faces.push(face);
        }
        Ok(faces)
    }

    /// Like [`Extractor::process`] for the next frame of a video: faces of the previous frame
    /// are followed from their landmarks, and the detector runs only every `redetect_every`
    /// frames or when a followed face is lost. `since_detect` counts frames since the last
    /// detection and is updated.
    pub fn process_tracked(
        &mut self,
        pyr: &Pyramid,
        previous: &[Face],
        since_detect: &mut u32,
        timings: &mut StageTimings,
    ) -> Result<Vec<Face>, OnnxRuntimeError> {
        let followable: Vec<&Face> = previous
            .iter()
            .filter(|f| f.presence >= 0.5 && f.mesh.len() == 468)
            .collect();
        let due = *since_detect + 1 >= self.settings.redetect_every.max(1);
        if !self.settings.track || followable.is_empty() || due {
            *since_detect = 0;
            return self.process(pyr, timings);
        }
        let t = Instant::now();
        let mut followed = Vec::with_capacity(followable.len());
        for prev in followable {
            let (mesh, presence) = self.landmarks_from_landmarks(pyr, &prev.mesh)?;
            if presence < 0.5 {
                // Lost: let the detector look at this frame afresh.
                timings.landmarks += t.elapsed();
                *since_detect = 0;
                return self.process(pyr, timings);
            }
            followed.push((mesh, presence));
        }
        timings.landmarks += t.elapsed();
        let t = Instant::now();
        let mut faces = Vec::with_capacity(followed.len());
        for (mesh, presence) in followed {
            let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
            for p in &mesh {
                for k in 0..2 {
                    lo[k] = lo[k].min(p[k]);
                    hi[k] = hi[k].max(p[k]);
                }
            }
            let det = FrameDetection {
                bbox: [lo[0], lo[1], hi[0], hi[1]],
                keypoints: [mesh[33], mesh[263], mesh[1], mesh[13], mesh[234], mesh[454]],
                score: presence,
            };
            faces.push(self.align(pyr.base(), det, &mesh, presence));
        }
        timings.align += t.elapsed();
        *since_detect += 1;
        Ok(faces)
    }

    fn run_detector(
        &mut self,
        pyr: &Pyramid,
        kind: BlazeFaceKind,
        back: &Affine,
        out: &mut Vec<FrameDetection>,
    ) -> Result<(), OnnxRuntimeError> {
        let size = kind.input_size();
        let base = pyr.base();
        let lb = letterbox(base.width, base.height, size);
        pyr.warp_tensor(&lb, size, -1.0, 1.0, &mut self.tensor);
        let model = match kind {
            BlazeFaceKind::ShortRange => &mut self.short,
            BlazeFaceKind::FullRange => &mut self.full,
        };
        let to_frame = back.then_after(&lb);
        let s = size as f64;
        let map = |p: [f32; 2]| to_frame.apply([p[0] as f64 * s, p[1] as f64 * s]);
        for d in model.detect(&self.tensor)? {
            let RawDetection {
                bbox,
                keypoints,
                score,
            } = d;
            let a = map([bbox[0], bbox[1]]);
            let b = map([bbox[2], bbox[3]]);
            let mut kps = [[0.0; 2]; 6];
            for (k, p) in kps.iter_mut().zip(keypoints) {
                *k = map(p);
            }
            out.push(FrameDetection {
                bbox: [
                    a[0].min(b[0]),
                    a[1].min(b[1]),
                    a[0].max(b[0]),
                    a[1].max(b[1]),
                ],
                keypoints: kps,
                score,
            });
        }
        Ok(())
    }

    fn detect(&mut self, pyr: &Pyramid) -> Result<Vec<FrameDetection>, OnnxRuntimeError> {
        let mut found = self.detect_upright(pyr, &Affine::IDENTITY)?;
        if found.is_empty() && self.settings.rotate_retry {
            // DFL order: 90, 270, 180 degrees.
            for q in [1u32, 3, 2] {
                let (turned, back) = rotate(pyr.base(), q);
                let turned = Pyramid::new(turned);
                found = self.detect_upright(&turned, &back)?;
                if !found.is_empty() {
                    break;
                }
            }
        }
        Ok(found)
    }

    fn detect_upright(
        &mut self,
        pyr: &Pyramid,
        back: &Affine,
    ) -> Result<Vec<FrameDetection>, OnnxRuntimeError> {
        let mut all = Vec::new();
        self.run_detector(pyr, BlazeFaceKind::ShortRange, back, &mut all)?;
        self.run_detector(pyr, BlazeFaceKind::FullRange, back, &mut all)?;
        all.retain(|d| d.bbox[2] - d.bbox[0] >= self.settings.min_face_px);
        all.sort_by(|a, b| b.score.total_cmp(&a.score));
        // Keep the best of overlapping detections from the two models.
        let mut kept: Vec<FrameDetection> = Vec::new();
        for d in all {
            let fb = d.bbox.map(|v| v as f32);
            if kept
                .iter()
                .all(|k| iou(&k.bbox.map(|v| v as f32), &fb) <= 0.3)
            {
                kept.push(d);
            }
        }
        Ok(kept)
    }

    /// FaceMesh on a square ROI; returns 68 frame-pixel landmarks, the 468 mesh points in frame
    /// pixels and the presence score.
    fn mesh_on_roi(
        &mut self,
        pyr: &Pyramid,
        roi: &Affine,
    ) -> Result<(MeshResult, Vec<[f64; 2]>), OnnxRuntimeError> {
        let size = faceswap_models::facemesh::FACEMESH_SIZE;
        pyr.warp_tensor(roi, size, 0.0, 1.0, &mut self.tensor);
        let r = self.mesh.landmarks(&self.tensor)?;
        let pts = r
            .points
            .iter()
            .map(|p| roi.apply([p[0] as f64, p[1] as f64]))
            .collect();
        Ok((r, pts))
    }

    fn averaged_landmarks(
        &mut self,
        pyr: &Pyramid,
        center: [f64; 2],
        side: f64,
        angle: f64,
    ) -> Result<(Vec<[f64; 2]>, f32), OnnxRuntimeError> {
        let size = faceswap_models::facemesh::FACEMESH_SIZE;
        let runs = 1 + self.settings.refeed as usize;
        let mut sum = vec![[0.0f64; 2]; 468];
        let mut presence = 0.0f32;
        for i in 0..runs {
            // Re-feed: jitter on a small circle of shifts and scales (deterministic, unbiased).
            let (dc, ds) = if i == 0 {
                ([0.0, 0.0], 1.0)
            } else {
                let a = std::f64::consts::TAU * (i - 1) as f64 / (runs - 1) as f64;
                (
                    [0.04 * side * a.cos(), 0.04 * side * a.sin()],
                    1.0 + 0.04 * (2.0 * a).cos(),
                )
            };
            let roi = roi_map(
                [center[0] + dc[0], center[1] + dc[1]],
                side * ds,
                angle,
                size,
            );
            let (r, pts) = self.mesh_on_roi(pyr, &roi)?;
            presence += r.presence;
            for (s, p) in sum.iter_mut().zip(&pts) {
                s[0] += p[0];
                s[1] += p[1];
            }
        }
        let n = runs as f64;
        Ok((
            sum.into_iter().map(|p| [p[0] / n, p[1] / n]).collect(),
            presence / runs as f32,
        ))
    }

    fn landmarks_from_detection(
        &mut self,
        pyr: &Pyramid,
        det: &FrameDetection,
    ) -> Result<(Vec<[f64; 2]>, f32), OnnxRuntimeError> {
        // MediaPipe's detection → ROI: box centre, 1.5 × the long side, rotated to the eye line.
        let [x0, y0, x1, y1] = det.bbox;
        let center = [(x0 + x1) / 2.0, (y0 + y1) / 2.0];
        let side = (x1 - x0).max(y1 - y0) * 1.5;
        let (l, r) = (det.keypoints[0], det.keypoints[1]);
        let angle = (r[1] - l[1]).atan2(r[0] - l[0]);
        self.averaged_landmarks(pyr, center, side, angle)
    }

    /// Second pass: MediaPipe's landmark → ROI (eye corners 33/263 for rotation, the rotated
    /// bounding box of the mesh, 1.5×), which centres and levels the face much better than the
    /// detector's box did.
    fn landmarks_from_landmarks(
        &mut self,
        pyr: &Pyramid,
        mesh: &[[f64; 2]],
    ) -> Result<(Vec<[f64; 2]>, f32), OnnxRuntimeError> {
        let (l, r) = (mesh[33], mesh[263]);
        let angle = (r[1] - l[1]).atan2(r[0] - l[0]);
        let (sin, cos) = angle.sin_cos();
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for p in mesh {
            let u = [p[0] * cos + p[1] * sin, -p[0] * sin + p[1] * cos];
            for k in 0..2 {
                lo[k] = lo[k].min(u[k]);
                hi[k] = hi[k].max(u[k]);
            }
        }
        let cu = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        let center = [cu[0] * cos - cu[1] * sin, cu[0] * sin + cu[1] * cos];
        let side = (hi[0] - lo[0]).max(hi[1] - lo[1]) * 1.5;
        self.averaged_landmarks(pyr, center, side, angle)
    }

    fn align(
        &self,
        frame: &RgbFrame,
        det: FrameDetection,
        mesh: &[[f64; 2]],
        presence: f32,
    ) -> Face {
        let mut lm = [[0.0; 2]; 68];
        for (o, &i) in lm
            .iter_mut()
            .zip(faceswap_models::IBUG68_FROM_FACEMESH.iter())
        {
            *o = mesh[i];
        }
        let legacy = legacy_matrix(&lm);
        let distance = lm[17..]
            .iter()
            .zip(MEAN_FACE_51.iter())
            .map(|(p, m)| {
                let a = legacy.apply(*p);
                ((a[0] - m[0]).powi(2) + (a[1] - m[1]).powi(2)).sqrt()
            })
            .sum::<f64>()
            / 51.0
            * 100.0;
        let roll_deg = -legacy.rotation().to_degrees();
        let face_px = 1.0 / legacy.scale();
        let short_side = frame.width.min(frame.height) as f64;
        let s = &self.settings;
        let rejected = if presence < 0.5 {
            Some(format!("landmarker lost the face (presence {presence:.2})"))
        } else if face_px < s.min_scale * short_side {
            Some(format!(
                "too small: {face_px:.0} px < {} × frame",
                s.min_scale
            ))
        } else if face_px > s.max_scale * short_side {
            Some(format!(
                "too large: {face_px:.0} px > {} × frame",
                s.max_scale
            ))
        } else if distance > s.max_distance {
            Some(format!(
                "misaligned: distance {distance:.1} > {}",
                s.max_distance
            ))
        } else if roll_deg.abs() > s.max_roll_deg {
            Some(format!("rolled {roll_deg:.0}° (limit {}°)", s.max_roll_deg))
        } else {
            None
        };
        Face {
            bbox: det.bbox,
            score: det.score,
            landmarks: lm.to_vec(),
            presence,
            legacy,
            distance,
            roll_deg,
            rejected,
            mesh: mesh.to_vec(),
        }
    }
}

/// Model files in the cache, by their conventional names.
pub fn model_files(dirs: &crate::paths::Dirs, runtime: &Path) -> ModelFiles {
    let m = dirs.models();
    ModelFiles {
        runtime: runtime.to_path_buf(),
        short_range: m.join("face_detection_short_range.onnx"),
        full_range: m.join("face_detection_full_range.onnx"),
        face_mesh: m.join("face_landmark.onnx"),
    }
}
