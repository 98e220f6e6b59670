//! Faces over time: temporal smoothing of landmarks (a One-Euro filter per followed face, run
//! causally while a video is extracted), track ids linking each person's faces across frames
//! (a pass over the finished store, so worker ranges and resumed runs link alike), and a
//! per-track report: frames, where the face was lost or weak, and its jitter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pipeline::Face;
use super::store::Alignments;

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

fn alpha(cutoff: f64, rate: f64) -> f64 {
    let tau = 1.0 / (std::f64::consts::TAU * cutoff);
    1.0 / (1.0 + tau * rate)
}

/// The filter state of one face: 68 points, each coordinate filtered on its own, and its last
/// two raw frames (for the shake measure).
#[derive(Debug, Clone)]
struct OneEuro {
    /// Eye distance when the filter started: the unit of the settings.
    unit: f64,
    value: [[f64; 2]; 68],
    speed: [[f64; 2]; 68],
    raw: Vec<[[f64; 2]; 68]>,
}

impl OneEuro {
    fn new(lm: &[[f64; 2]; 68]) -> OneEuro {
        OneEuro {
            unit: inter_ocular(lm),
            value: *lm,
            speed: [[0.0; 2]; 68],
            raw: Vec::with_capacity(3),
        }
    }

    /// The raw landmarks' acceleration `|p(t) − 2p(t−1) + p(t−2)|` (mean over the 68 points, in
    /// eye distances), once three frames are in.
    fn shake(&mut self, lm: &[[f64; 2]; 68]) -> Option<f64> {
        let out = match &self.raw[..] {
            [a, b] => Some(acceleration(a, b, lm)),
            _ => None,
        };
        if self.raw.len() == 2 {
            self.raw.remove(0);
        }
        self.raw.push(*lm);
        out
    }

    fn step(&mut self, lm: &[[f64; 2]; 68], s: &Smoothing, rate: f64) -> [[f64; 2]; 68] {
        let a_d = alpha(s.d_cutoff, rate);
        let points = lm.iter().flatten();
        let state = self
            .value
            .iter_mut()
            .flatten()
            .zip(self.speed.iter_mut().flatten());
        for (x, (value, speed)) in points.zip(state) {
            let dx = (x - *value) * rate / self.unit;
            *speed += a_d * (dx - *speed);
            let cutoff = s.min_cutoff + s.beta * speed.abs();
            *value += alpha(cutoff, rate) * (x - *value);
        }
        self.value
    }
}

/// Smooths the faces of consecutive video frames. Each face of a frame continues the filter of
/// the previous frame's face it overlaps most (box IoU ≥ 0.3); others start a new one.
#[derive(Debug, Clone)]
pub struct Smoother {
    settings: Option<Smoothing>,
    rate: f64,
    live: Vec<([f64; 4], OneEuro)>,
}

/// One face of a frame after [`Smoother::smooth`].
#[derive(Debug, Clone, Copy)]
pub struct Smoothed {
    /// The landmarks to use: smoothed, or the raw ones when smoothing is off.
    pub landmarks: [[f64; 2]; 68],
    /// The raw landmarks' frame-to-frame acceleration in eye distances (None for a face's first
    /// two frames): how much the landmarker wavers on this face (occlusion, blur).
    pub shake: Option<f64>,
}

impl Smoother {
    /// A smoother for a video at `fps` frames per second; `settings` None only follows faces
    /// and measures their shake.
    pub fn new(settings: Option<Smoothing>, fps: f64) -> Smoother {
        Smoother {
            settings,
            rate: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                25.0
            },
            live: Vec::new(),
        }
    }

    /// Forgets every face (a cut, or a jump in the frames).
    pub fn reset(&mut self) {
        self.live.clear();
    }

    /// Each face of the next frame, in order: its landmarks (smoothed) and its shake.
    pub fn smooth(&mut self, faces: &[Face]) -> Vec<Smoothed> {
        let mut previous = std::mem::take(&mut self.live);
        let mut out = Vec::with_capacity(faces.len());
        for f in faces {
            let lm = f.landmarks68();
            let best = previous
                .iter()
                .enumerate()
                .map(|(i, (b, _))| (i, iou(b, &f.bbox)))
                .filter(|(_, v)| *v >= 0.3)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i);
            let mut filter = match best {
                Some(i) => previous.swap_remove(i).1,
                None => OneEuro::new(&lm),
            };
            let shake = filter.shake(&lm);
            let landmarks = match &self.settings {
                Some(settings) => filter.step(&lm, settings, self.rate),
                None => lm,
            };
            out.push(Smoothed { landmarks, shake });
            self.live.push((f.bbox, filter));
        }
        out
    }
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes.
pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Distance between the eye centres (iBUG 36–41 and 42–47), at least 1 px.
pub fn inter_ocular(lm: &[[f64; 2]]) -> f64 {
    let centre = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let (x, y) = lm[r]
            .iter()
            .fold((0.0, 0.0), |a, p| (a.0 + p[0], a.1 + p[1]));
        [x / n, y / n]
    };
    let (l, r) = (centre(36..42), centre(42..48));
    (l[0] - r[0]).hypot(l[1] - r[1]).max(1.0)
}

/// A face counts as weak when the landmarker's presence logit is below this (FaceMesh's
/// presence saturates near 1 on visible faces; a hand over the eyes brings it to ~0.99997).
pub const LOW_PRESENCE_LOGIT: f64 = 12.0;
/// … or when its raw landmarks shake more than this (eye distances, averaged over the frames of the
/// track, see [`SHAKE_WINDOW`]): a hand over the mouth or nose leaves the eyes found but the lower face wavering.
pub const HIGH_SHAKE: f64 = 0.03;
/// Frames either side over which the shake is averaged (about a second of video).
pub const SHAKE_WINDOW: usize = 12;

fn presence_logit(p: f32) -> f64 {
    let p = p as f64;
    if p >= 1.0 {
        f64::INFINITY
    } else if p <= 0.0 {
        f64::NEG_INFINITY
    } else {
        (p / (1.0 - p)).ln()
    }
}

/// How tracks are linked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linking {
    /// A track waits this many frames for its face to come back (a hand passing, a turn away).
    pub max_gap: u64,
    /// A face continues a track when its centre lies within this many of the track's face
    /// sizes (eye distances) of where the track was last seen, plus `growth` per missed frame.
    pub gate: f64,
    /// Extra gate per frame of gap (the person moves while hidden).
    pub growth: f64,
}

impl Default for Linking {
    fn default() -> Self {
        Linking {
            max_gap: 72,
            gate: 0.8,
            growth: 0.05,
        }
    }
}

/// What one track did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackReport {
    /// Its id.
    pub id: u32,
    /// First and last frame with its face.
    pub first: u64,
    /// Last frame with its face.
    pub last: u64,
    /// Frames with its face.
    pub frames: u64,
    /// Frame ranges between first and last without its face (lost), inclusive.
    pub lost: Vec<(u64, u64)>,
    /// Frames where its face was weak ([`LOW_PRESENCE_LOGIT`], [`HIGH_SHAKE`]) or rejected.
    pub low_confidence: Vec<u64>,
    /// Mean frame-to-frame landmark acceleration, in eye distances (None under 3 frames in a row).
    pub jitter: Option<f64>,
}

impl TrackReport {
    /// One line for logs and the CLI.
    pub fn line(&self) -> String {
        let ranges = |r: &[(u64, u64)]| {
            r.iter()
                .map(|(a, b)| {
                    if a == b {
                        format!("{a}")
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "track {}: frames {}-{} ({} with the face){}{}; jitter {}",
            self.id,
            self.first,
            self.last,
            self.frames,
            if self.lost.is_empty() {
                String::new()
            } else {
                format!("; lost {}", ranges(&self.lost))
            },
            if self.low_confidence.is_empty() {
                String::new()
            } else {
                format!("; {} low-confidence frames", self.low_confidence.len())
            },
            self.jitter.map_or("-".into(), |j| format!(
                "{:.2}% of the eye distance",
                j * 100.0
            ))
        )
    }
}

struct Live {
    id: u32,
    frame: u64,
    centre: [f64; 2],
    size: f64,
}

fn centre_of(lm: &[[f64; 2]; 68]) -> [f64; 2] {
    let (x, y) = lm[17..]
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p[0], a.1 + p[1]));
    [x / 51.0, y / 51.0]
}

/// Gives every face of a video's store a track id (in order of first appearance) and reports
/// each track. Faces are linked frame by frame to the tracks seen within `max_gap` frames,
/// nearest first, each track taking at most one face per frame; faces of similar size only.
pub fn link_tracks(store: &mut Alignments, linking: &Linking) -> Vec<TrackReport> {
    let mut live: Vec<Live> = Vec::new();
    let mut next_id = 0u32;
    for (&frame, entry) in store.frames.iter_mut() {
        live.retain(|t| frame.saturating_sub(t.frame) <= linking.max_gap);
        let faces: Vec<([f64; 2], f64)> = entry
            .faces
            .iter()
            .map(|f| {
                let lm = f.face.landmarks68();
                (centre_of(&lm), inter_ocular(&lm))
            })
            .collect();
        let mut pairs = Vec::new();
        for (fi, (c, size)) in faces.iter().enumerate() {
            for (ti, t) in live.iter().enumerate() {
                let gap = frame.saturating_sub(t.frame).saturating_sub(1) as f64;
                let d = (c[0] - t.centre[0]).hypot(c[1] - t.centre[1]) / t.size;
                let ratio = size / t.size;
                if d <= linking.gate + linking.growth * gap && (0.6..=1.67).contains(&ratio) {
                    pairs.push((d, fi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut face_track = vec![None; faces.len()];
        let mut taken = vec![false; live.len()];
        for (_, fi, ti) in pairs {
            if face_track[fi].is_none() && !taken[ti] {
                face_track[fi] = Some(ti);
                taken[ti] = true;
            }
        }
        for (fi, f) in entry.faces.iter_mut().enumerate() {
            let (c, size) = faces[fi];
            let id = match face_track[fi] {
                Some(ti) => {
                    let t = &mut live[ti];
                    t.frame = frame;
                    t.centre = c;
                    t.size = size;
                    t.id
                }
                None => {
                    let id = next_id;
                    next_id += 1;
                    live.push(Live {
                        id,
                        frame,
                        centre: c,
                        size,
                    });
                    id
                }
            };
            f.track = Some(id);
        }
    }
    track_reports(store)
}

/// Each track's frames, lost ranges, weak frames and jitter, from the store's track ids.
pub fn track_reports(store: &Alignments) -> Vec<TrackReport> {
    // Per track: (frame, face, shake), in frame order.
    type Seen<'a> = Vec<(u64, &'a Face, Option<f32>)>;
    let mut by_track: BTreeMap<u32, Seen> = BTreeMap::new();
    for (&frame, entry) in &store.frames {
        for f in &entry.faces {
            if let Some(id) = f.track {
                by_track
                    .entry(id)
                    .or_default()
                    .push((frame, &f.face, f.shake));
            }
        }
    }
    by_track
        .into_iter()
        .map(|(id, seen)| {
            let first = seen[0].0;
            let last = seen[seen.len() - 1].0;
            let mut lost = Vec::new();
            for w in seen.windows(2) {
                let (a, b) = (w[0].0, w[1].0);
                // Frames the store holds between them (every-nth extraction skips the rest).
                let missing: Vec<u64> = store.frames.range(a + 1..b).map(|(i, _)| *i).collect();
                if let (Some(lo), Some(hi)) = (missing.first(), missing.last()) {
                    lost.push((*lo, *hi));
                }
            }
            let low_confidence = seen
                .iter()
                .enumerate()
                .filter(|(k, (_, f, _))| {
                    let window = &seen
                        [k.saturating_sub(SHAKE_WINDOW)..(k + SHAKE_WINDOW + 1).min(seen.len())];
                    let shakes: Vec<f64> = window
                        .iter()
                        .filter_map(|(_, _, s)| s.map(f64::from))
                        .collect();
                    let shake = shakes.iter().sum::<f64>() / shakes.len().max(1) as f64;
                    presence_logit(f.presence) < LOW_PRESENCE_LOGIT
                        || shake > HIGH_SHAKE
                        || f.rejected.is_some()
                })
                .map(|(_, (i, _, _))| *i)
                .collect();
            TrackReport {
                id,
                first,
                last,
                frames: seen.len() as u64,
                lost,
                low_confidence,
                jitter: jitter(&seen.iter().map(|(i, f, _)| (*i, *f)).collect::<Vec<_>>()),
            }
        })
        .collect()
}

/// Mean over the 68 points of `|c − 2b + a|`, in eye distances of `b`.
fn acceleration(a: &[[f64; 2]; 68], b: &[[f64; 2]; 68], c: &[[f64; 2]; 68]) -> f64 {
    let sum: f64 = (0..68)
        .map(|i| {
            let x = c[i][0] - 2.0 * b[i][0] + a[i][0];
            let y = c[i][1] - 2.0 * b[i][1] + a[i][1];
            x.hypot(y)
        })
        .sum();
    sum / 68.0 / inter_ocular(b)
}

/// Mean landmark acceleration `|p(t+1) − 2p(t) + p(t−1)|` over runs of three consecutive
/// frames, in eye distances.
pub fn jitter(seen: &[(u64, &Face)]) -> Option<f64> {
    let mut sum = 0.0;
    let mut n = 0usize;
    for w in seen.windows(3) {
        if w[1].0 != w[0].0 + 1 || w[2].0 != w[1].0 + 1 {
            continue;
        }
        sum += acceleration(
            &w[0].1.landmarks68(),
            &w[1].1.landmarks68(),
            &w[2].1.landmarks68(),
        );
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face_at(x: f64, y: f64, size: f64) -> Face {
        let mut landmarks = vec![[0.0; 2]; 68];
        for (i, p) in landmarks.iter_mut().enumerate() {
            let a = i as f64 / 68.0 * std::f64::consts::TAU;
            *p = [x + a.cos() * size, y + a.sin() * size];
        }
        // Eyes at ±size/2.
        landmarks[36..42].fill([x - size / 2.0, y]);
        landmarks[42..48].fill([x + size / 2.0, y]);
        Face {
            bbox: [x - size, y - size, x + size, y + size],
            score: 0.9,
            landmarks,
            presence: 0.95,
            legacy: crate::extract::geometry::Affine::IDENTITY,
            distance: 1.0,
            roll_deg: 0.0,
            rejected: None,
            mesh: Vec::new(),
        }
    }

    #[test]
    fn one_euro_removes_noise_at_rest_and_follows_motion() {
        let mut s = Smoother::new(Some(Smoothing::default()), 25.0);
        let mut seed = 7u64;
        let mut noise = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 2.0
        };
        let (mut raw_err, mut smooth_err) = (0.0, 0.0);
        for _ in 0..100 {
            let f = face_at(100.0 + noise(), 100.0 + noise(), 40.0);
            let out = s.smooth(std::slice::from_ref(&f));
            raw_err += (f.landmarks[0][0] - 140.0).abs();
            smooth_err += (out[0].landmarks[0][0] - 140.0).abs();
        }
        assert!(smooth_err < 0.6 * raw_err, "{smooth_err} vs {raw_err}");
        // A steady move of 2 px/frame is followed with a small lag.
        let mut last = 0.0;
        for t in 0..50 {
            let f = face_at(100.0 + 2.0 * t as f64, 100.0, 40.0);
            last = s.smooth(std::slice::from_ref(&f))[0].landmarks[0][0] - f.landmarks[0][0];
        }
        assert!(last.abs() < 4.0, "lag {last}");
    }

    #[test]
    fn tracks_survive_a_gap_and_stay_apart() {
        use crate::extract::store::{FrameEntry, StoredFace};
        let mut store = Alignments::new(crate::extract::store::SourceInfo {
            path: "v.mp4".into(),
            width: 640,
            height: 360,
            fps: Some(25.0),
        });
        let stored = StoredFace::new;
        for i in 0..40u64 {
            let mut faces = vec![stored(face_at(400.0 - i as f64, 100.0, 30.0))];
            // The first face is hidden in frames 10-19, then returns a little further on.
            if !(10..20).contains(&i) {
                faces.push(stored(face_at(100.0 + i as f64, 120.0, 30.0)));
            }
            store.frames.insert(
                i,
                FrameEntry {
                    name: format!("frame_{i:06}"),
                    pts: None,
                    faces,
                },
            );
        }
        let reports = link_tracks(&mut store, &Linking::default());
        assert_eq!(reports.len(), 2, "{reports:?}");
        let moving = reports.iter().find(|r| !r.lost.is_empty()).unwrap();
        assert_eq!(moving.lost, vec![(10, 19)]);
        assert_eq!(moving.frames, 30);
        assert!(reports.iter().all(|r| r.jitter.unwrap() < 1e-9));
        println!("{}", moving.line());
    }
}
