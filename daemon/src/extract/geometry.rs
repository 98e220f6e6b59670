//! The geometry every stage shares: 2×3 affine maps, the Umeyama similarity to faceswap's mean
//! face (the "legacy" alignment matrix), and aligned-crop matrices for any size and centering.

use nalgebra::{Matrix2, Vector2};
use serde::{Deserialize, Serialize};

/// faceswap's 51-point mean face (iBUG points 17..67) in [0, 1]
/// (deepfakes/faceswap lib/align/constants.py, `MEAN_FACE[LandmarkType.LM_2D_51]`).
pub const MEAN_FACE_51: [[f64; 2]; 51] = [
    [0.010086, 0.106454],
    [0.085135, 0.038915],
    [0.191003, 0.018748],
    [0.300643, 0.034489],
    [0.403270, 0.077391],
    [0.596729, 0.077391],
    [0.699356, 0.034489],
    [0.808997, 0.018748],
    [0.914864, 0.038915],
    [0.989913, 0.106454],
    [0.500000, 0.203352],
    [0.500000, 0.307009],
    [0.500000, 0.409805],
    [0.500000, 0.515625],
    [0.376753, 0.587326],
    [0.435909, 0.609345],
    [0.500000, 0.628106],
    [0.564090, 0.609345],
    [0.623246, 0.587326],
    [0.131610, 0.216423],
    [0.196995, 0.178758],
    [0.275698, 0.179852],
    [0.344479, 0.231733],
    [0.270791, 0.245099],
    [0.192616, 0.244077],
    [0.655520, 0.231733],
    [0.724301, 0.179852],
    [0.803005, 0.178758],
    [0.868389, 0.216423],
    [0.807383, 0.244077],
    [0.729208, 0.245099],
    [0.264022, 0.780233],
    [0.350858, 0.745405],
    [0.438731, 0.727388],
    [0.500000, 0.742578],
    [0.561268, 0.727388],
    [0.649141, 0.745405],
    [0.735977, 0.780233],
    [0.652032, 0.864805],
    [0.566594, 0.902192],
    [0.500000, 0.909281],
    [0.433405, 0.902192],
    [0.347967, 0.864805],
    [0.300252, 0.784792],
    [0.437969, 0.778746],
    [0.500000, 0.785343],
    [0.562030, 0.778746],
    [0.699747, 0.784792],
    [0.563237, 0.824182],
    [0.500000, 0.831803],
    [0.436763, 0.824182],
];

/// A 2×3 affine map `[a b tx; c d ty]`: `(x, y) → (a x + b y + tx, c x + d y + ty)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [[f64; 3]; 2]);

impl Affine {
    /// The identity.
    pub const IDENTITY: Affine = Affine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);

    /// Similarity: scale `s`, rotation `theta` (radians, counter-clockwise in maths axes, which is
    /// clockwise on screen), then translation.
    pub fn similarity(s: f64, theta: f64, tx: f64, ty: f64) -> Self {
        let (sin, cos) = theta.sin_cos();
        Affine([[s * cos, -s * sin, tx], [s * sin, s * cos, ty]])
    }

    /// Applies the map to a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let m = &self.0;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// `self ∘ other`: first `other`, then `self`.
    pub fn then_after(&self, other: &Affine) -> Affine {
        let (a, b) = (&self.0, &other.0);
        let mut out = [[0.0; 3]; 2];
        for (r, row) in out.iter_mut().enumerate() {
            row[0] = a[r][0] * b[0][0] + a[r][1] * b[1][0];
            row[1] = a[r][0] * b[0][1] + a[r][1] * b[1][1];
            row[2] = a[r][0] * b[0][2] + a[r][1] * b[1][2] + a[r][2];
        }
        Affine(out)
    }

    /// The inverse map (None when singular).
    pub fn inverse(&self) -> Option<Affine> {
        let m = &self.0;
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if det.abs() < 1e-12 {
            return None;
        }
        let (a, b, c, d) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
        Some(Affine([
            [a, b, -(a * m[0][2] + b * m[1][2])],
            [c, d, -(c * m[0][2] + d * m[1][2])],
        ]))
    }

    /// Uniform scale of a similarity (√|det|).
    pub fn scale(&self) -> f64 {
        let m = &self.0;
        (m[0][0] * m[1][1] - m[0][1] * m[1][0]).abs().sqrt()
    }

    /// Rotation angle of a similarity, radians.
    pub fn rotation(&self) -> f64 {
        self.0[1][0].atan2(self.0[0][0])
    }
}

/// Least-squares similarity mapping `src` onto `dst` (Umeyama 1991, with reflection guard).
pub fn umeyama(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Affine {
    let n = src.len().min(dst.len()).max(1) as f64;
    let mean = |pts: &[[f64; 2]]| {
        pts.iter()
            .fold(Vector2::zeros(), |acc, p| acc + Vector2::new(p[0], p[1]))
            / n
    };
    let (ms, md) = (mean(src), mean(dst));
    let mut cov = Matrix2::zeros();
    let mut var_s = 0.0;
    for (s, d) in src.iter().zip(dst) {
        let sc = Vector2::new(s[0], s[1]) - ms;
        let dc = Vector2::new(d[0], d[1]) - md;
        cov += dc * sc.transpose();
        var_s += sc.norm_squared();
    }
    cov /= n;
    var_s /= n;
    let svd = cov.svd(true, true);
    let (Some(u), Some(vt)) = (svd.u, svd.v_t) else {
        return Affine::IDENTITY;
    };
    let mut d = Matrix2::identity();
    if cov.determinant() < 0.0 || (u.determinant() * vt.determinant()) < 0.0 {
        d[(1, 1)] = -1.0;
    }
    let r = u * d * vt;
    let scale = if var_s > 0.0 {
        (svd.singular_values[0] * d[(0, 0)] + svd.singular_values[1] * d[(1, 1)]) / var_s
    } else {
        1.0
    };
    let t = md - scale * r * ms;
    Affine([
        [scale * r[(0, 0)], scale * r[(0, 1)], t[0]],
        [scale * r[(1, 0)], scale * r[(1, 1)], t[1]],
    ])
}

/// The legacy alignment matrix: frame pixels → mean-face space ([0, 1] spans the inner face),
/// from 68 iBUG landmarks (points 17..67 are used).
pub fn legacy_matrix(landmarks: &[[f64; 2]; 68]) -> Affine {
    umeyama(&landmarks[17..], &MEAN_FACE_51)
}

/// How much room around the inner face an aligned crop keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Centering {
    /// faceswap "legacy": padding ratio 0.375 (`EXTRACT_RATIOS`).
    Legacy,
    /// faceswap "face": ratio 0.5 (without faceswap's pose offset, which needs head pose).
    Face,
    /// faceswap "head": ratio 0.625 (same caveat).
    Head,
    /// DFL full face `f` (padding 0.2109375 of the mean-face square).
    DflFull,
    /// DFL whole face `wf` (padding 0.40, shifted 7% up).
    DflWholeFace,
    /// DFL head (padding 0.70, shifted down).
    DflHead,
}

impl Centering {
    /// Parses the CLI spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "legacy" => Centering::Legacy,
            "face" => Centering::Face,
            "head" => Centering::Head,
            "f" | "full" => Centering::DflFull,
            "wf" | "whole_face" => Centering::DflWholeFace,
            "dfl-head" => Centering::DflHead,
            _ => return None,
        })
    }

    /// `(padding around the unit square as a fraction of its side, vertical shift in units of
    /// the unit square, positive = down)`. faceswap: crop side = 1 / (1 − ratio) of the
    /// mean-face square (lib/align/constants.py EXTRACT_RATIOS); DFL: `padding` on each side
    /// (facelib/LandmarksProcessor.py FaceType paddings).
    fn padding_and_shift(self) -> (f64, f64) {
        let fs = |ratio: f64| (ratio / (1.0 - ratio) / 2.0, 0.0);
        match self {
            Centering::Legacy => fs(0.375),
            Centering::Face => fs(0.5),
            Centering::Head => fs(0.625),
            Centering::DflFull => (0.2109375, 0.0),
            Centering::DflWholeFace => (0.40, -0.07),
            Centering::DflHead => (0.70, 0.5 * 0.70 * 0.5),
        }
    }
}

/// Frame pixels → aligned crop pixels of side `size` for `centering`.
pub fn crop_matrix(legacy: &Affine, size: u32, centering: Centering) -> Affine {
    let (pad, shift) = centering.padding_and_shift();
    let side = 1.0 + 2.0 * pad;
    let s = size as f64 / side;
    // unit-square coords u → crop: (u + pad) * s, shifted.
    let to_crop = Affine([[s, 0.0, pad * s], [0.0, s, (pad - shift) * s]]);
    to_crop.then_after(legacy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umeyama_recovers_a_known_similarity() {
        let truth = Affine::similarity(1.7, 0.4, 12.0, -3.0);
        let dst: Vec<[f64; 2]> = MEAN_FACE_51.iter().map(|p| truth.apply(*p)).collect();
        let got = umeyama(&MEAN_FACE_51, &dst);
        for r in 0..2 {
            for c in 0..3 {
                assert!(
                    (got.0[r][c] - truth.0[r][c]).abs() < 1e-9,
                    "{got:?} vs {truth:?}"
                );
            }
        }
        assert!((got.scale() - 1.7).abs() < 1e-9);
        assert!((got.rotation() - 0.4).abs() < 1e-9);
        let back = got.inverse().unwrap().then_after(&got);
        assert!((back.0[0][0] - 1.0).abs() < 1e-9 && back.0[0][2].abs() < 1e-9);
    }

    #[test]
    fn legacy_crop_puts_the_mean_face_in_the_middle() {
        // Landmarks equal to the mean face scaled into a 200 px frame.
        let mut lm = [[0.0; 2]; 68];
        for (i, p) in MEAN_FACE_51.iter().enumerate() {
            lm[17 + i] = [100.0 + 200.0 * p[0], 50.0 + 200.0 * p[1]];
        }
        let legacy = legacy_matrix(&lm);
        let crop = crop_matrix(&legacy, 256, Centering::Legacy);
        let nose = crop.apply(lm[30]); // mean face (0.5, 0.515625)
        // Legacy: side = 1/(1-0.375) = 1.6 units → the unit square spans 160 px centred at 128.
        assert!((nose[0] - 128.0).abs() < 1e-6, "{nose:?}");
        assert!(
            (nose[1] - (48.0 + 0.515625 * 160.0)).abs() < 1e-6,
            "{nose:?}"
        );
    }
}
