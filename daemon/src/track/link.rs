//! Track ids linking each person's faces across frames (a pass over the finished store, so
//! worker ranges and resumed runs link alike), and a per-track report: frames, where the face
//! was lost or weak, and its jitter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::smooth::acceleration;
use crate::faceset::face::Face;
use crate::faceset::store::Alignments;
use crate::geometry::inter_ocular;

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
