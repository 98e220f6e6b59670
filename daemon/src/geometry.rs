//! The geometry every stage shares: 2×3 affine maps, the Umeyama similarity to faceswap's mean
//! face (the "legacy" alignment matrix), aligned-crop matrices for any size and centering, head
//! pose, and measures of boxes and landmarks (IoU, eye distance, distance from the mean face).

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

/// faceswap's 26-point 3D mean head (lib/align/constants.py `MEAN_FACE[LandmarkType.LM_3D_26]`),
/// matched to the iBUG points in [`POSE_POINTS`].
pub const MEAN_FACE_3D_26: [[f64; 3]; 26] = [
    [4.056931, -11.432347, 1.636229],
    [1.833492, -12.542305, 4.061275],
    [0.0, -12.901019, 4.070434],
    [-1.833492, -12.542305, 4.061275],
    [-4.056931, -11.432347, 1.636229],
    [6.825897, 1.275284, 4.402142],
    [1.330353, 1.636816, 6.903745],
    [-1.330353, 1.636816, 6.903745],
    [-6.825897, 1.275284, 4.402142],
    [1.930245, -5.060977, 5.914376],
    [0.746313, -5.136947, 6.263227],
    [0.0, -5.485328, 6.76343],
    [-0.746313, -5.136947, 6.263227],
    [-1.930245, -5.060977, 5.914376],
    [5.311432, 0.0, 3.987654],
    [1.78993, -0.091703, 4.413414],
    [-1.78993, -0.091703, 4.413414],
    [-5.311432, 0.0, 3.987654],
    [2.774015, -7.566103, 5.048531],
    [0.509714, -7.056507, 6.566167],
    [0.0, -7.131772, 6.704956],
    [-0.509714, -7.056507, 6.566167],
    [-2.774015, -7.566103, 5.048531],
    [-0.589441, -8.443925, 6.109526],
    [0.0, -8.601736, 6.097667],
    [0.589441, -8.443925, 6.109526],
];

/// iBUG indices matched to [`MEAN_FACE_3D_26`] (faceswap lib/align/pose.py).
pub const POSE_POINTS: [usize; 26] = [
    6, 7, 8, 9, 10, 17, 21, 22, 26, 31, 32, 33, 34, 35, 36, 39, 42, 45, 48, 50, 51, 52, 54, 56, 57,
    58,
];

/// A head pose solved against the 3D mean head, in faceswap's normalised camera (focal 4,
/// principal point (0.5, 0.5), landmarks aligned to the mean face's [0, 1] square).
#[derive(Debug, Clone, Copy)]
pub struct HeadPose {
    /// Rotation vector (axis × angle).
    pub rotation: [f64; 3],
    /// Translation.
    pub translation: [f64; 3],
    /// RMS reprojection error in normalised units.
    pub rms: f64,
}

const FOCAL: f64 = 4.0;

fn project(rv: &nalgebra::Vector3<f64>, t: &nalgebra::Vector3<f64>, p: &[f64; 3]) -> [f64; 2] {
    let r = nalgebra::Rotation3::from_scaled_axis(*rv);
    let c = r * nalgebra::Vector3::new(p[0], p[1], p[2]) + t;
    let z = if c.z.abs() < 1e-9 { 1e-9 } else { c.z };
    [FOCAL * c.x / z + 0.5, FOCAL * c.y / z + 0.5]
}

impl HeadPose {
    /// Solves the pose by Levenberg–Marquardt on the reprojection error of the 26 points
    /// (what OpenCV's `solvePnP(..., SOLVEPNP_ITERATIVE)` minimises), from landmarks already
    /// aligned by the legacy matrix.
    pub fn solve(aligned: &[[f64; 2]; 68]) -> HeadPose {
        use std::f64::consts::PI;
        // Several starts (facing the camera under each half-turn), keep the best fit: the
        // reprojection error has mirrored local minima.
        [
            [0.0, 0.0, 0.0],
            [PI, 0.0, 0.0],
            [0.0, PI, 0.0],
            [0.0, 0.0, PI],
        ]
        .into_iter()
        .map(|r| Self::refine(aligned, r))
        .min_by(|a, b| a.rms.total_cmp(&b.rms))
        .unwrap_or(HeadPose {
            rotation: [0.0; 3],
            translation: [0.0, 0.0, 55.0],
            rms: f64::INFINITY,
        })
    }

    fn refine(aligned: &[[f64; 2]; 68], start: [f64; 3]) -> HeadPose {
        use nalgebra::{SMatrix, SVector, Vector3};
        let target: Vec<[f64; 2]> = POSE_POINTS.iter().map(|&i| aligned[i]).collect();
        // At the distance that gives the model's face the aligned face's size.
        let mut x = SVector::<f64, 6>::from([start[0], start[1], start[2], 0.0, 0.0, 55.0]);
        let residuals = |x: &SVector<f64, 6>| -> SVector<f64, 52> {
            let rv = Vector3::new(x[0], x[1], x[2]);
            let t = Vector3::new(x[3], x[4], x[5]);
            let mut r = SVector::<f64, 52>::zeros();
            for (k, (p, q)) in MEAN_FACE_3D_26.iter().zip(&target).enumerate() {
                let uv = project(&rv, &t, p);
                r[2 * k] = uv[0] - q[0];
                r[2 * k + 1] = uv[1] - q[1];
            }
            r
        };
        let mut lambda = 1e-3;
        let mut res = residuals(&x);
        let mut cost = res.norm_squared();
        for _ in 0..100 {
            let mut jac = SMatrix::<f64, 52, 6>::zeros();
            for j in 0..6 {
                let mut xp = x;
                let h = 1e-6 * x[j].abs().max(1.0);
                xp[j] += h;
                jac.set_column(j, &((residuals(&xp) - res) / h));
            }
            let jtj = jac.transpose() * jac;
            let jtr = jac.transpose() * res;
            let mut improved = false;
            for _ in 0..10 {
                let mut a = jtj;
                for d in 0..6 {
                    a[(d, d)] *= 1.0 + lambda;
                }
                let Some(step) = a.lu().solve(&(-jtr)) else {
                    lambda *= 10.0;
                    continue;
                };
                let cand = x + step;
                let r2 = residuals(&cand);
                let c2 = r2.norm_squared();
                if c2 < cost {
                    x = cand;
                    res = r2;
                    let gain = cost - c2;
                    cost = c2;
                    lambda = (lambda / 10.0).max(1e-12);
                    improved = gain > 1e-14;
                    break;
                }
                lambda *= 10.0;
            }
            if !improved {
                break;
            }
        }
        HeadPose {
            rotation: [x[0], x[1], x[2]],
            translation: [x[3], x[4], x[5]],
            rms: (cost / 26.0).sqrt(),
        }
    }

    /// Pitch, yaw and roll in degrees (rotations about x, y, z of the rotation matrix
    /// `Rz·Ry·Rx`, as OpenCV's RQ decomposition gives faceswap).
    pub fn angles_deg(&self) -> [f64; 3] {
        let r = nalgebra::Rotation3::from_scaled_axis(nalgebra::Vector3::from(self.rotation));
        let (pitch, yaw, roll) = r.euler_angles();
        [pitch.to_degrees(), yaw.to_degrees(), roll.to_degrees()]
    }

    /// Where a point of the 3D head lands in the aligned [0, 1] square.
    pub fn project(&self, p: [f64; 3]) -> [f64; 2] {
        let rv = nalgebra::Vector3::from(self.rotation);
        let t = nalgebra::Vector3::from(self.translation);
        project(&rv, &t, &p)
    }

    /// faceswap's centering offsets: the projected face centre (0, −1.5, 4.2) and head centre
    /// (0, 0, −2.3) relative to (0.5, 0.5).
    pub fn offset(&self, centering: Centering) -> [f64; 2] {
        let point = match centering {
            Centering::Face => [0.0, -1.5, 4.2],
            Centering::Head => [0.0, 0.0, -2.3],
            _ => return [0.0, 0.0],
        };
        let p = self.project(point);
        [p[0] - 0.5, p[1] - 0.5]
    }
}

/// The legacy matrix moved so that `centering`'s point of the head sits at the square's centre
/// (faceswap's face / head centering); unchanged for legacy and the DFL types.
pub fn centered_matrix(
    legacy: &Affine,
    landmarks: &[[f64; 2]; 68],
    centering: Centering,
) -> Affine {
    if !matches!(centering, Centering::Face | Centering::Head) {
        return *legacy;
    }
    let mut aligned = [[0.0; 2]; 68];
    for (a, p) in aligned.iter_mut().zip(landmarks) {
        *a = legacy.apply(*p);
    }
    let offset = HeadPose::solve(&aligned).offset(centering);
    let mut m = *legacy;
    m.0[0][2] -= offset[0];
    m.0[1][2] -= offset[1];
    m
}

pub use faceswap_options::Centering;

/// `(padding around the unit square as a fraction of its side, vertical shift in units of
/// the unit square, positive = down)`. faceswap: crop side = 1 / (1 − ratio) of the
/// mean-face square (lib/align/constants.py EXTRACT_RATIOS); DFL: `padding` on each side
/// (facelib/LandmarksProcessor.py FaceType paddings).
fn padding_and_shift(centering: Centering) -> (f64, f64) {
    let fs = |ratio: f64| (ratio / (1.0 - ratio) / 2.0, 0.0);
    match centering {
        Centering::Legacy => fs(0.375),
        Centering::Face => fs(0.5),
        Centering::Head => fs(0.625),
        Centering::DflFull => (0.2109375, 0.0),
        Centering::DflWholeFace => (0.40, -0.07),
        Centering::DflHead => (0.70, 0.5 * 0.70 * 0.5),
    }
}

/// Frame pixels → aligned crop pixels of side `size` for `centering`. For face / head centering
/// pass the matrix from [`centered_matrix`].
pub fn crop_matrix(legacy: &Affine, size: u32, centering: Centering) -> Affine {
    let (pad, shift) = padding_and_shift(centering);
    let side = 1.0 + 2.0 * pad;
    let s = size as f64 / side;
    // unit-square coords u → crop: (u + pad) * s, shifted.
    let to_crop = Affine([[s, 0.0, pad * s], [0.0, s, (pad - shift) * s]]);
    to_crop.then_after(legacy)
}

/// The legacy matrix of 68 landmarks, their mean distance from the mean face (percent of the
/// aligned face, faceswap's "distance") and the roll in degrees.
pub fn face_geometry(lm: &[[f64; 2]; 68]) -> (Affine, f64, f64) {
    let legacy = legacy_matrix(lm);
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
    (legacy, distance, -legacy.rotation().to_degrees())
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
    fn head_pose_of_the_mean_face_fits_and_gives_small_offsets() {
        // The 68 points of the 2D mean face (jaw from the 3D model's projection is not needed:
        // only the pose points matter, taken from the mean face where they exist).
        let mut lm = [[0.0; 2]; 68];
        for (i, p) in MEAN_FACE_51.iter().enumerate() {
            lm[17 + i] = *p;
        }
        // Jaw points 6..10 near the chin of the mean face.
        for (k, i) in (6..=10).enumerate() {
            lm[i] = [
                0.35 + 0.075 * k as f64,
                1.05 + 0.03 * (2.0 - (k as f64 - 2.0).abs()),
            ];
        }
        let pose = HeadPose::solve(&lm);
        println!(
            "{pose:?} face {:?} head {:?}",
            pose.offset(Centering::Face),
            pose.offset(Centering::Head)
        );
        // The 3D head and the 2D mean face come from different data: a few % residual is normal.
        assert!(pose.rms < 0.08, "reprojection error {}", pose.rms);
        let face = pose.offset(Centering::Face);
        let head = pose.offset(Centering::Head);
        assert!(
            face[0].abs() < 0.05 && head[0].abs() < 0.05,
            "{face:?} {head:?}"
        );
        assert!(
            head[1] < face[1],
            "the head centre sits above the face centre: {face:?} {head:?}"
        );
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
