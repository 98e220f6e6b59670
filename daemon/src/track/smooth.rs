//! Temporal smoothing of landmarks: a One-Euro filter per followed face, run causally while a
//! video is extracted (and by the `spatial` tool over a finished store), and each face's shake.

use crate::faceset::face::Face;
pub use crate::faceset::face::Smoothing;
use crate::geometry::{inter_ocular, iou};
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

/// Mean over the 68 points of `|c − 2b + a|`, in eye distances of `b`.
pub(super) fn acceleration(a: &[[f64; 2]; 68], b: &[[f64; 2]; 68], c: &[[f64; 2]; 68]) -> f64 {
    let sum: f64 = (0..68)
        .map(|i| {
            let x = c[i][0] - 2.0 * b[i][0] + a[i][0];
            let y = c[i][1] - 2.0 * b[i][1] + a[i][1];
            x.hypot(y)
        })
        .sum();
    sum / 68.0 / inter_ocular(b)
}
