//! Per-frame extraction: detect (BlazeFace short + full range, rotated retries), 68 landmarks
//! (FaceMesh mapped to iBUG), second pass and re-feed, alignment, filters.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faceswap_models::blazeface::iou;
use faceswap_models::facemesh::FACEMESH_SIZE;
use faceswap_models::fan::FAN_SIZE;
use faceswap_models::s3fd::{S3FD_MEAN_BGR, S3FD_SIZE};
use faceswap_models::{
    BlazeFace, BlazeFaceKind, FaceMesh, Fan, OnnxRuntimeError, RawDetection, S3fd,
};

use crate::faceset::face::{ExtractSettings, Face};
use crate::geometry::{Affine, face_geometry};
use crate::media::RgbFrame;
use crate::sampling::{Pyramid, letterbox, roi_map, rotate};

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
    /// Optional S3FD detector (ONNX) replacing BlazeFace.
    pub s3fd: Option<PathBuf>,
    /// Optional FAN 2D landmarker (ONNX) replacing FaceMesh.
    pub fan: Option<PathBuf>,
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

enum Detector {
    BlazeFace { short: BlazeFace, full: BlazeFace },
    S3fd(S3fd),
}

enum Landmarker {
    FaceMesh(FaceMesh),
    Fan(Fan),
}

/// The loaded extractor.
pub struct Extractor {
    detector: Detector,
    landmarker: Landmarker,
    settings: ExtractSettings,
    tensor: Vec<f32>,
}

/// iBUG-68 points from a landmarker's own points (468 FaceMesh points, or already 68).
fn ibug68(points: &[[f64; 2]]) -> [[f64; 2]; 68] {
    let mut lm = [[0.0; 2]; 68];
    if points.len() == 68 {
        lm.copy_from_slice(points);
    } else {
        for (o, &i) in lm
            .iter_mut()
            .zip(faceswap_models::IBUG68_FROM_FACEMESH.iter())
        {
            *o = points.get(i).copied().unwrap_or([0.0, 0.0]);
        }
    }
    lm
}

/// BlazeFace's six keypoints (eyes, nose tip, mouth, ear tragions) taken from 68 landmarks,
/// for faces followed or re-aligned from landmarks rather than detected.
fn keypoints(lm: &[[f64; 2]; 68]) -> [[f64; 2]; 6] {
    [lm[36], lm[45], lm[30], lm[62], lm[0], lm[16]]
}

impl Extractor {
    /// Loads the detector and landmarker: MediaPipe's, or S3FD / FAN where configured.
    pub fn load(files: &ModelFiles, settings: ExtractSettings) -> Result<Self, OnnxRuntimeError> {
        let rt = &files.runtime;
        let detector = match &files.s3fd {
            Some(p) => Detector::S3fd(S3fd::load(rt, p)?),
            None => Detector::BlazeFace {
                short: BlazeFace::load(rt, &files.short_range, BlazeFaceKind::ShortRange)?,
                full: BlazeFace::load(rt, &files.full_range, BlazeFaceKind::FullRange)?,
            },
        };
        let landmarker = match &files.fan {
            Some(p) => Landmarker::Fan(Fan::load(rt, p)?),
            None => Landmarker::FaceMesh(FaceMesh::load(rt, &files.face_mesh)?),
        };
        Ok(Extractor {
            detector,
            landmarker,
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
        let mut dets = self.detect(pyr)?;
        self.keep_largest(&mut dets, 0);
        timings.detect += t.elapsed();
        let mut faces = Vec::with_capacity(dets.len());
        for det in dets {
            faces.push(self.landmarks_and_align(pyr, det, timings)?);
        }
        Ok(faces)
    }

    /// A detection's landmarks (with the second pass), aligned and filtered.
    fn landmarks_and_align(
        &mut self,
        pyr: &Pyramid,
        det: FrameDetection,
        timings: &mut StageTimings,
    ) -> Result<Face, OnnxRuntimeError> {
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
        Ok(face)
    }

    /// Like [`Extractor::process`] for the next frame of a video: faces of the previous frame
    /// are followed from their landmarks, and the detector runs only every `redetect_every`
    /// frames (to find faces that entered; the followed ones keep their followed landmarks) or
    /// when a followed face is lost. `since_detect` counts frames since the last detection and
    /// is updated.
    pub fn process_tracked(
        &mut self,
        pyr: &Pyramid,
        previous: &[Face],
        since_detect: &mut u32,
        timings: &mut StageTimings,
    ) -> Result<Vec<Face>, OnnxRuntimeError> {
        let followable: Vec<&Face> = previous
            .iter()
            .filter(|f| f.presence >= 0.5 && !f.mesh.is_empty())
            .collect();
        if !self.settings.track || followable.is_empty() {
            *since_detect = 0;
            return self.process(pyr, timings);
        }
        let due = *since_detect + 1 >= self.settings.redetect_every.max(1);
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
            let lm = ibug68(&mesh);
            let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
            for p in &lm {
                for k in 0..2 {
                    lo[k] = lo[k].min(p[k]);
                    hi[k] = hi[k].max(p[k]);
                }
            }
            let det = FrameDetection {
                bbox: [lo[0], lo[1], hi[0], hi[1]],
                keypoints: keypoints(&lm),
                score: presence,
            };
            faces.push(self.align(pyr.base(), det, &mesh, presence));
        }
        timings.align += t.elapsed();
        let max = self.settings.max_faces as usize;
        if !due || (max > 0 && faces.len() >= max) {
            *since_detect = since_detect.saturating_add(1);
            return Ok(faces);
        }
        *since_detect = 0;
        // Faces that entered: detections away from every followed face take the full path.
        // Upright only: rotated retries are for frames where no face is known at all.
        let t = Instant::now();
        let dets = self.detect_upright(pyr, &Affine::IDENTITY)?;
        timings.detect += t.elapsed();
        let inside = |p: [f64; 2], b: &[f64; 4]| {
            p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3]
        };
        let centre = |b: &[f64; 4]| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0];
        let mut entered: Vec<FrameDetection> = dets
            .into_iter()
            .filter(|det| {
                !faces.iter().any(|f| {
                    inside(centre(&det.bbox), &f.bbox) || inside(centre(&f.bbox), &det.bbox)
                })
            })
            .collect();
        self.keep_largest(&mut entered, faces.len());
        for det in entered {
            faces.push(self.landmarks_and_align(pyr, det, timings)?);
        }
        Ok(faces)
    }

    /// Under a face limit, keeps the largest detections that fit beside `already` faces.
    fn keep_largest(&self, dets: &mut Vec<FrameDetection>, already: usize) {
        let max = self.settings.max_faces as usize;
        if max == 0 {
            return;
        }
        let room = max.saturating_sub(already);
        if dets.len() > room {
            let area = |d: &FrameDetection| (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]);
            dets.sort_by(|a, b| area(b).total_cmp(&area(a)));
            dets.truncate(room);
        }
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
        let model = match (&mut self.detector, kind) {
            (Detector::BlazeFace { short, .. }, BlazeFaceKind::ShortRange) => short,
            (Detector::BlazeFace { full, .. }, BlazeFaceKind::FullRange) => full,
            (Detector::S3fd(_), _) => return Ok(()),
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

    fn run_s3fd(
        &mut self,
        pyr: &Pyramid,
        back: &Affine,
        out: &mut Vec<FrameDetection>,
    ) -> Result<(), OnnxRuntimeError> {
        let Detector::S3fd(model) = &mut self.detector else {
            return Ok(());
        };
        let base = pyr.base();
        let lb = letterbox(base.width, base.height, S3FD_SIZE);
        pyr.warp_tensor_bgr(&lb, S3FD_SIZE, S3FD_MEAN_BGR, &mut self.tensor);
        let to_frame = back.then_after(&lb);
        let s = S3FD_SIZE as f64;
        for b in model.detect(&self.tensor)? {
            let p = to_frame.apply([b.bbox[0] as f64 * s, b.bbox[1] as f64 * s]);
            let q = to_frame.apply([b.bbox[2] as f64 * s, b.bbox[3] as f64 * s]);
            let bbox = [
                p[0].min(q[0]),
                p[1].min(q[1]),
                p[0].max(q[0]),
                p[1].max(q[1]),
            ];
            // S3FD has no keypoints: level pseudo-eyes keep the landmark crop upright.
            let (w, h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
            let eye_y = bbox[1] + 0.4 * h;
            let cx = (bbox[0] + bbox[2]) / 2.0;
            out.push(FrameDetection {
                bbox,
                keypoints: [
                    [bbox[0] + 0.3 * w, eye_y],
                    [bbox[0] + 0.7 * w, eye_y],
                    [cx, bbox[1] + 0.6 * h],
                    [cx, bbox[1] + 0.8 * h],
                    [bbox[0], eye_y],
                    [bbox[2], eye_y],
                ],
                score: b.score,
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
        if matches!(self.detector, Detector::S3fd(_)) {
            self.run_s3fd(pyr, back, &mut all)?;
        } else {
            self.run_detector(pyr, BlazeFaceKind::ShortRange, back, &mut all)?;
            self.run_detector(pyr, BlazeFaceKind::FullRange, back, &mut all)?;
        }
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

    /// The landmarker on one square ROI: its points in frame pixels and a presence score
    /// (FAN has no presence output: 1).
    fn landmarks_on_roi(
        &mut self,
        pyr: &Pyramid,
        center: [f64; 2],
        side: f64,
        angle: f64,
    ) -> Result<(Vec<[f64; 2]>, f32), OnnxRuntimeError> {
        let size = match self.landmarker {
            Landmarker::FaceMesh(_) => FACEMESH_SIZE,
            Landmarker::Fan(_) => FAN_SIZE,
        };
        let roi = roi_map(center, side, angle, size);
        pyr.warp_tensor(&roi, size, 0.0, 1.0, &mut self.tensor);
        let (points, presence) = match &mut self.landmarker {
            Landmarker::FaceMesh(mesh) => {
                let r = mesh.landmarks(&self.tensor)?;
                (r.points, r.presence)
            }
            Landmarker::Fan(fan) => (fan.landmarks(&self.tensor)?.points, 1.0),
        };
        let points = points
            .iter()
            .map(|p| roi.apply([p[0] as f64, p[1] as f64]))
            .collect();
        Ok((points, presence))
    }

    fn averaged_landmarks(
        &mut self,
        pyr: &Pyramid,
        center: [f64; 2],
        side: f64,
        angle: f64,
    ) -> Result<(Vec<[f64; 2]>, f32), OnnxRuntimeError> {
        let runs = 1 + self.settings.refeed as usize;
        let mut sum: Vec<[f64; 2]> = Vec::new();
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
            let (pts, p) = self.landmarks_on_roi(
                pyr,
                [center[0] + dc[0], center[1] + dc[1]],
                side * ds,
                angle,
            )?;
            presence += p;
            if sum.is_empty() {
                sum = vec![[0.0; 2]; pts.len()];
            }
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
        let [x0, y0, x1, y1] = det.bbox;
        let (l, r) = (det.keypoints[0], det.keypoints[1]);
        let angle = (r[1] - l[1]).atan2(r[0] - l[0]);
        let (center, side) = match self.landmarker {
            // MediaPipe's detection → ROI: box centre, 1.5 × the long side.
            Landmarker::FaceMesh(_) => (
                [(x0 + x1) / 2.0, (y0 + y1) / 2.0],
                (x1 - x0).max(y1 - y0) * 1.5,
            ),
            // DFL/face-alignment FAN crop: centre raised 12 % of the height, side 200 (w + h) / 195.
            Landmarker::Fan(_) => (
                [(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * 0.12],
                200.0 * ((x1 - x0) + (y1 - y0)) / 195.0,
            ),
        };
        self.averaged_landmarks(pyr, center, side, angle)
    }

    /// Second pass and tracking: a ROI from landmarks — MediaPipe's for FaceMesh (eye corners
    /// 33/263 level the crop, rotated bounding box of the mesh × 1.5), the same idea for FAN's 68
    /// points (eye corners 36/45, × 2 and raised 10 %, to match FAN's looser training crops).
    fn landmarks_from_landmarks(
        &mut self,
        pyr: &Pyramid,
        points: &[[f64; 2]],
    ) -> Result<(Vec<[f64; 2]>, f32), OnnxRuntimeError> {
        let fan = matches!(self.landmarker, Landmarker::Fan(_));
        let (l, r) = if points.len() == 68 {
            (points[36], points[45])
        } else {
            (points[33], points[263])
        };
        let angle = (r[1] - l[1]).atan2(r[0] - l[0]);
        let (sin, cos) = angle.sin_cos();
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for p in points {
            let u = [p[0] * cos + p[1] * sin, -p[0] * sin + p[1] * cos];
            for k in 0..2 {
                lo[k] = lo[k].min(u[k]);
                hi[k] = hi[k].max(u[k]);
            }
        }
        let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]);
        let raise = if fan { 0.1 * extent } else { 0.0 };
        let cu = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0 - raise];
        let center = [cu[0] * cos - cu[1] * sin, cu[0] * sin + cu[1] * cos];
        let side = extent * if fan { 2.0 } else { 1.5 };
        self.averaged_landmarks(pyr, center, side, angle)
    }

    /// The face aligned again (matrix, distance, roll, filters) from other landmarks — smoothed
    /// ones; its box, scores and the landmarker's own points (which tracking follows) stay.
    pub fn realign(&self, frame: &RgbFrame, face: &Face, lm: &[[f64; 2]; 68]) -> Face {
        let det = FrameDetection {
            bbox: face.bbox,
            keypoints: keypoints(lm),
            score: face.score,
        };
        let mut out = self.align(frame, det, lm, face.presence);
        out.mesh = face.mesh.clone();
        out
    }

    fn align(
        &self,
        frame: &RgbFrame,
        det: FrameDetection,
        mesh: &[[f64; 2]],
        presence: f32,
    ) -> Face {
        let lm = ibug68(mesh);
        let (legacy, distance, roll_deg) = face_geometry(&lm);
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
        s3fd: None,
        fan: None,
    }
}
