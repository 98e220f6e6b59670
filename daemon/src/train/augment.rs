//! Training samples as DeepFaceLab makes them (core/imagelib/warp.py `gen_warp_params`,
//! samplelib/SampleProcessor.py): random transform (rotation, scale, shift), random warp of the
//! network input only, random flip, HSV jitter; the full-face mask and the eyes-and-mouth mask
//! from the landmarks. Every draw comes from a generator seeded by (run seed, step, side, slot),
//! so a batch is a pure function of its step: a resumed run sees exactly the batches an
//! uninterrupted run would.

use rand::{Rng, RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use super::faceset::{Faceset, TrainingFace};
use crate::geometry::Affine;
use crate::warp::{
    TransformRanges, WarpGrid, convex_hull, fill_convex, gaussian_blur, random_transform,
    sample_rgb, shift_hsv, transform_plane,
};

/// How samples of one side are drawn and altered.
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentOptions {
    /// Random warp of the network input (DFL: on; off in pretraining).
    pub random_warp: bool,
    /// Mirror 40% of samples (DFL's flip probability).
    pub flip: bool,
    /// Random HSV shift strength, 0–0.3 (DFL `random_hsv_power`).
    pub hsv_power: f64,
    /// Pick a yaw bin uniformly, then a face in it (DFL `uniform_yaw`).
    pub uniform_yaw: bool,
    /// Build the eyes-and-mouth mask (otherwise it is all zeros).
    pub eyes_mouth: bool,
}

impl Default for AugmentOptions {
    fn default() -> Self {
        AugmentOptions {
            random_warp: true,
            flip: true,
            hsv_power: 0.0,
            uniform_yaw: false,
            eyes_mouth: false,
        }
    }
}

/// DFL SAEHD's transform ranges.
const ROTATION_DEG: f64 = 10.0;
const SCALE: f64 = 0.15;
const SHIFT: f64 = 0.05;
const FLIP_PROBABILITY: f64 = 0.4;
/// Uniform-yaw bins over the yaw proxy's [−1, 1] (DFL bins yaw into 128 parts).
const YAW_BINS: usize = 128;

/// One side's batch in host memory, planar `[B, C, R, R]` f32 in [0, 1].
#[derive(Debug, Clone, Default)]
pub struct HostSide {
    /// Warped network input, `[B, 3, R, R]`.
    pub warped: Vec<f32>,
    /// Unwarped target, `[B, 3, R, R]`.
    pub target: Vec<f32>,
    /// Full-face mask, `[B, 1, R, R]`.
    pub mask: Vec<f32>,
    /// `clip(blur(mask, R/32), 0, 0.5)·2`, `[B, 1, R, R]`.
    pub loss_mask: Vec<f32>,
    /// Eyes-and-mouth mask, `[B, 1, R, R]`.
    pub em_mask: Vec<f32>,
    /// Which faces were drawn.
    pub faces: Vec<usize>,
}

/// Draws side `side`'s batch for `step`.
pub fn make_side(
    set: &Faceset,
    yaw_bins: &[Vec<usize>],
    opts: &AugmentOptions,
    seed: u64,
    step: u64,
    side: u64,
    batch: usize,
) -> HostSide {
    let r = set.resolution;
    let mut out = HostSide {
        warped: Vec::with_capacity(batch * 3 * r * r),
        target: Vec::with_capacity(batch * 3 * r * r),
        mask: Vec::with_capacity(batch * r * r),
        loss_mask: Vec::with_capacity(batch * r * r),
        em_mask: Vec::with_capacity(batch * r * r),
        faces: Vec::with_capacity(batch),
    };
    for slot in 0..batch as u64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(faceswap_models::weights::step_seed(
            seed ^ side.wrapping_mul(0xA076_1D64_78BD_642F),
            step.wrapping_mul(4096).wrapping_add(slot),
        ));
        let index = if opts.uniform_yaw && !yaw_bins.is_empty() {
            let bin = &yaw_bins[rng.random_range(0..yaw_bins.len())];
            bin[rng.random_range(0..bin.len())]
        } else {
            rng.random_range(0..set.faces.len())
        };
        let s = make_sample(&set.faces[index], r, opts, &mut rng);
        out.warped.extend(s.warped);
        out.target.extend(s.target);
        out.mask.extend(s.mask);
        out.loss_mask.extend(s.loss_mask);
        out.em_mask.extend(s.em_mask);
        out.faces.push(index);
    }
    out
}

/// The non-empty yaw bins of a faceset (face indices per bin).
pub fn yaw_bins(set: &Faceset) -> Vec<Vec<usize>> {
    let mut bins = vec![Vec::new(); YAW_BINS];
    for (i, f) in set.faces.iter().enumerate() {
        let b = (((f.yaw + 1.0) / 2.0) * YAW_BINS as f64).floor() as usize;
        bins[b.min(YAW_BINS - 1)].push(i);
    }
    bins.retain(|b| !b.is_empty());
    bins
}

/// One augmented sample, planar.
pub struct Sample {
    /// `[3, R, R]`.
    pub warped: Vec<f32>,
    /// `[3, R, R]`.
    pub target: Vec<f32>,
    /// `[R, R]`.
    pub mask: Vec<f32>,
    /// `[R, R]`.
    pub loss_mask: Vec<f32>,
    /// `[R, R]`.
    pub em_mask: Vec<f32>,
}

/// Augments one face; `rng` is consumed in a fixed order.
pub fn make_sample(
    face: &TrainingFace,
    r: usize,
    opts: &AugmentOptions,
    rng: &mut impl Rng,
) -> Sample {
    let to_out = random_transform(
        r,
        rng,
        TransformRanges {
            rotation_deg: ROTATION_DEG,
            scale: SCALE,
            shift: SHIFT,
            flip: opts.flip.then_some(FLIP_PROBABILITY),
        },
    );
    let from_out = to_out.inverse().unwrap_or(Affine::IDENTITY);
    let warp = opts.random_warp.then(|| WarpGrid::random(r, rng));
    let hsv = (opts.hsv_power > 0.0).then(|| {
        let p = opts.hsv_power;
        (
            rng.random_range(-0.5..=0.5) * p, // hue, in turns
            rng.random_range(-0.5..=0.5) * p,
            rng.random_range(-0.5..=0.5) * p,
        )
    });

    let mut target = vec![0f32; 3 * r * r];
    let mut warped = vec![0f32; 3 * r * r];
    for y in 0..r {
        for x in 0..r {
            let src = from_out.apply([x as f64, y as f64]);
            let t = sample_rgb(&face.rgb, r, src);
            let w = match &warp {
                Some(g) => sample_rgb(&face.rgb, r, g.displace(src)),
                None => t,
            };
            let (t, w) = match hsv {
                Some(shift) => (shift_hsv(t, shift), shift_hsv(w, shift)),
                None => (t, w),
            };
            for ch in 0..3 {
                target[ch * r * r + y * r + x] = t[ch];
                warped[ch * r * r + y * r + x] = w[ch];
            }
        }
    }
    let lm: Vec<[f64; 2]> = face.landmarks.iter().map(|p| to_out.apply(*p)).collect();
    let mask = match &face.mask {
        // The stored mask the rules picked, moved by the same transform as the pixels.
        Some((_, plane)) => transform_plane(plane, r, &from_out),
        None => fill_convex(&convex_hull(&lm), r),
    };
    let blur = (r / 32).max(1) as f64;
    let loss_mask = gaussian_blur(&mask, r, blur)
        .into_iter()
        .map(|v| v.clamp(0.0, 0.5) * 2.0)
        .collect();
    let em_mask = if opts.eyes_mouth {
        eyes_mouth_mask(&lm, &mask, r)
    } else {
        vec![0.0; r * r]
    };
    Sample {
        warped,
        target,
        mask,
        loss_mask,
        em_mask,
    }
}

/// Separable max filter (a square structuring element, close to DFL's ellipse at these sizes).
fn dilate(plane: &[f32], r: usize, radius: usize) -> Vec<f32> {
    let pass = |src: &[f32], horizontal: bool| {
        let mut out = vec![0f32; r * r];
        for y in 0..r {
            for x in 0..r {
                let (lo, hi) = if horizontal { (x, x) } else { (y, y) };
                let (lo, hi) = (lo.saturating_sub(radius), (hi + radius).min(r - 1));
                out[y * r + x] = (lo..=hi)
                    .map(|k| {
                        if horizontal {
                            src[y * r + k]
                        } else {
                            src[k * r + x]
                        }
                    })
                    .fold(0.0, f32::max);
            }
        }
        out
    };
    pass(&pass(plane, true), false)
}

/// DFL's eyes-and-mouth mask: hulls of each eye (36–41, 42–47) and the mouth (48–67), dilated
/// by R/32, blurred by R/16, kept inside the face mask.
fn eyes_mouth_mask(lm: &[[f64; 2]], face: &[f32], r: usize) -> Vec<f32> {
    let mut m = vec![0f32; r * r];
    for range in [36..42, 42..48, 48..68] {
        for (o, v) in m.iter_mut().zip(fill_convex(&convex_hull(&lm[range]), r)) {
            *o = o.max(v);
        }
    }
    let m = dilate(&m, r, (r / 32).max(1));
    gaussian_blur(&m, r, (r as f64 / 16.0 / 3.0).max(0.5))
        .into_iter()
        .zip(face)
        .map(|(v, f)| v * f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::warp::*;

    fn face(r: usize) -> TrainingFace {
        // A square "face": landmarks on a ring around the centre, a gradient image.
        let mut landmarks = [[0.0; 2]; 68];
        for (i, p) in landmarks.iter_mut().enumerate() {
            let a = i as f64 / 68.0 * std::f64::consts::TAU;
            *p = [
                r as f64 / 2.0 + a.cos() * r as f64 * 0.3,
                r as f64 / 2.0 + a.sin() * r as f64 * 0.3,
            ];
        }
        let mut rgb = Vec::with_capacity(r * r * 3);
        for y in 0..r {
            for x in 0..r {
                rgb.extend([(x * 255 / r) as u8, (y * 255 / r) as u8, 128]);
            }
        }
        TrainingFace {
            rgb,
            landmarks,
            yaw: 0.0,
            file: "synthetic".into(),
            centering: crate::geometry::Centering::DflFull,
            mask: None,
        }
    }

    #[test]
    fn without_augmentation_the_target_is_the_face_and_the_mask_its_hull() {
        let r = 32;
        let f = face(r);
        let opts = AugmentOptions {
            random_warp: false,
            flip: false,
            ..AugmentOptions::default()
        };
        // Zero transform: draw until the generator gives a near-identity (checked via pixels).
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let s = make_sample(&f, r, &opts, &mut rng);
        assert_eq!(s.warped, s.target, "no warp: input equals target");
        let inside = s.mask.iter().filter(|v| **v == 1.0).count() as f64;
        // Ring radius 0.3 r (transformed by scale ≤ 1.15): area ≈ π(0.3 r·s)².
        let want = std::f64::consts::PI * (0.3 * r as f64).powi(2);
        assert!(
            inside > 0.6 * want && inside < 1.5 * want,
            "{inside} vs {want}"
        );
        assert!(s.loss_mask.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn warp_changes_only_the_input_and_batches_repeat_exactly() {
        let r = 32;
        let set = Faceset {
            resolution: r,
            faces: vec![face(r), face(r)],
            skipped: vec![],
        };
        let opts = AugmentOptions {
            eyes_mouth: true,
            hsv_power: 0.2,
            ..AugmentOptions::default()
        };
        let one = make_side(&set, &[], &opts, 5, 10, 0, 3);
        let two = make_side(&set, &[], &opts, 5, 10, 0, 3);
        assert_eq!(one.warped, two.warped);
        assert_eq!(one.em_mask, two.em_mask);
        assert_ne!(one.warped, one.target, "warp moved pixels");
        let other_step = make_side(&set, &[], &opts, 5, 11, 0, 3);
        assert_ne!(one.target, other_step.target);
        let other_side = make_side(&set, &[], &opts, 5, 10, 1, 3);
        assert_ne!(one.target, other_side.target);
        assert_eq!(one.warped.len(), 3 * 3 * r * r);
        assert_eq!(one.em_mask.len(), 3 * r * r);
        assert!(one.em_mask.iter().any(|v| *v > 0.1));
    }

    #[test]
    fn a_stored_mask_replaces_the_hull_and_moves_with_the_pixels() {
        let r = 32;
        let mut f = face(r);
        // A stored mask covering the left half only: nothing like the ring's hull.
        let plane: Vec<f32> = (0..r * r)
            .map(|i| if i % r < r / 2 { 1.0 } else { 0.0 })
            .collect();
        f.mask = Some(("xseg".into(), plane.clone()));
        let opts = AugmentOptions {
            random_warp: false,
            flip: false,
            ..AugmentOptions::default()
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let s = make_sample(&f, r, &opts, &mut rng);
        // Where the target shows the left half of the source (red channel = x·255/r), the mask
        // is 1; the right half, 0. Compare away from the edge.
        let (mut agree, mut total) = (0, 0);
        for i in 0..r * r {
            // Red and green encode the source column and row; skip the edges, where the
            // image replicates its border and the mask is 0.
            let (x_src, y_src) = (s.target[i] * r as f32, s.target[r * r + i] * r as f32);
            let edge = |v: f32| !(1.5..=r as f32 - 2.5).contains(&v);
            if (x_src - r as f32 / 2.0).abs() < 2.0 || edge(x_src) || edge(y_src) {
                continue;
            }
            total += 1;
            let want = if x_src < r as f32 / 2.0 { 1.0 } else { 0.0 };
            if (s.mask[i] - want).abs() < 0.5 {
                agree += 1;
            }
        }
        assert!(total > r * r / 2, "{total}");
        assert!(agree as f64 / total as f64 > 0.97, "{agree}/{total}");
        // An identity transform reproduces the plane exactly.
        assert_eq!(transform_plane(&plane, r, &Affine::IDENTITY), plane);
    }

    #[test]
    fn hull_fill_matches_a_square() {
        let sq = [[2.0, 2.0], [9.0, 2.0], [9.0, 9.0], [2.0, 9.0], [5.0, 5.0]];
        let hull = convex_hull(&sq);
        assert_eq!(hull.len(), 4);
        let m = fill_convex(&hull, 12);
        assert_eq!(m.iter().filter(|v| **v == 1.0).count(), 64);
    }

    #[test]
    fn hsv_shift_of_zero_is_identity_and_hue_turns_wrap() {
        let c = [0.8f32, 0.3, 0.1];
        let same = shift_hsv(c, (0.0, 0.0, 0.0));
        for k in 0..3 {
            assert!((same[k] - c[k]).abs() < 1e-6);
        }
        let full = shift_hsv(c, (1.0, 0.0, 0.0));
        for k in 0..3 {
            assert!((full[k] - c[k]).abs() < 1e-6);
        }
        let third = shift_hsv([1.0, 0.0, 0.0], (1.0 / 3.0, 0.0, 0.0));
        assert!((third[1] - 1.0).abs() < 1e-6 && third[0] < 1e-6);
    }
}
