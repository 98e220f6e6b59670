//! Training samples as DeepFaceLab makes them (core/imagelib/warp.py `gen_warp_params`,
//! samplelib/SampleProcessor.py): random transform (rotation, scale, shift), random warp of the
//! network input only, random flip, HSV jitter; the full-face mask and the eyes-and-mouth mask
//! from the landmarks. Every draw comes from a generator seeded by (run seed, step, side, slot),
//! so a batch is a pure function of its step: a resumed run sees exactly the batches an
//! uninterrupted run would.

use rand::{Rng, RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use rand_distr::{Distribution, StandardNormal};

use super::faceset::{Faceset, TrainingFace};
use crate::extract::geometry::Affine;

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
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(faceswap_models::train::step_seed(
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

/// Ranges of DFL's random transform (`gen_warp_params`).
#[derive(Debug, Clone, Copy)]
pub struct TransformRanges {
    /// Rotation within ± this many degrees.
    pub rotation_deg: f64,
    /// Scale within 1 ± this.
    pub scale: f64,
    /// Shift within ± this fraction of the side, each axis.
    pub shift: f64,
    /// Mirror with this probability (None: never, and no draw is made).
    pub flip: Option<f64>,
}

/// A random face-pixel → output-pixel transform of an `r`-pixel square: rotation and scale
/// about the centre, then shift (DFL `getRotationMatrix2D`), then an optional mirror. Draws
/// angle, scale, x shift, y shift, flip, in that order.
pub fn random_transform(r: usize, rng: &mut impl Rng, ranges: TransformRanges) -> Affine {
    let rf = r as f64;
    let angle = rng
        .random_range(-ranges.rotation_deg..=ranges.rotation_deg)
        .to_radians();
    let scale = 1.0 + rng.random_range(-ranges.scale..=ranges.scale);
    let (tx, ty) = (
        rng.random_range(-ranges.shift..=ranges.shift) * rf,
        rng.random_range(-ranges.shift..=ranges.shift) * rf,
    );
    let flip = ranges.flip.is_some_and(|p| rng.random_bool(p));
    let c = rf / 2.0;
    let about_centre = Affine::similarity(scale, angle, 0.0, 0.0);
    let moved = about_centre.apply([c, c]);
    let to_out = Affine([
        [
            about_centre.0[0][0],
            about_centre.0[0][1],
            c - moved[0] + tx,
        ],
        [
            about_centre.0[1][0],
            about_centre.0[1][1],
            c - moved[1] + ty,
        ],
    ]);
    if flip {
        Affine([[-1.0, 0.0, rf - 1.0], [0.0, 1.0, 0.0]]).then_after(&to_out)
    } else {
        to_out
    }
}

/// DFL's random warp: a coarse grid (cell w/2, w/4 or w/8) whose inner points move by
/// N(0,1)·0.24·cell, interpolated smoothly over the image.
pub struct WarpGrid {
    cell: f64,
    points: usize,
    dx: Vec<f64>,
    dy: Vec<f64>,
}

impl WarpGrid {
    /// A random grid for an `r`-pixel square.
    pub fn random(r: usize, rng: &mut impl Rng) -> WarpGrid {
        let cell = (r >> rng.random_range(1..=3usize)).max(1);
        let points = r / cell + 1;
        let mut dx = vec![0.0; points * points];
        let mut dy = vec![0.0; points * points];
        for gy in 1..points.saturating_sub(1) {
            for gx in 1..points - 1 {
                let n1: f64 = StandardNormal.sample(rng);
                let n2: f64 = StandardNormal.sample(rng);
                dx[gy * points + gx] = n1 * cell as f64 * 0.24;
                dy[gy * points + gx] = n2 * cell as f64 * 0.24;
            }
        }
        WarpGrid {
            cell: cell as f64,
            points,
            dx,
            dy,
        }
    }

    /// The point moved by the grid's displacement at that point (bilinear between grid points).
    pub fn displace(&self, p: [f64; 2]) -> [f64; 2] {
        let last = (self.points - 1) as f64;
        let gx = (p[0] / self.cell).clamp(0.0, last);
        let gy = (p[1] / self.cell).clamp(0.0, last);
        let (x0, y0) = (
            (gx.floor() as usize).min(self.points - 2),
            (gy.floor() as usize).min(self.points - 2),
        );
        let (fx, fy) = (gx - x0 as f64, gy - y0 as f64);
        let at = |v: &[f64], x: usize, y: usize| v[y * self.points + x];
        let lerp = |v: &[f64]| {
            let top = at(v, x0, y0) * (1.0 - fx) + at(v, x0 + 1, y0) * fx;
            let bottom = at(v, x0, y0 + 1) * (1.0 - fx) + at(v, x0 + 1, y0 + 1) * fx;
            top * (1.0 - fy) + bottom * fy
        };
        [p[0] + lerp(&self.dx), p[1] + lerp(&self.dy)]
    }
}

/// `plane` (`r × r`) resampled through `from_out` (output pixel → source pixel, pixel centres at
/// integers), bilinear, 0 outside.
pub fn transform_plane(plane: &[f32], r: usize, from_out: &Affine) -> Vec<f32> {
    let mut out = Vec::with_capacity(r * r);
    for y in 0..r {
        for x in 0..r {
            out.push(sample_plane(
                plane,
                r,
                from_out.apply([x as f64, y as f64]),
                false,
            ));
        }
    }
    out
}

/// Bilinear sample of an `r × r` plane at pixel-index coordinates: border replicated
/// (`replicate`) or 0 outside.
pub fn sample_plane(plane: &[f32], r: usize, p: [f64; 2], replicate: bool) -> f32 {
    let max = (r - 1) as f64;
    if !replicate && (p[0] < -1.0 || p[1] < -1.0 || p[0] > max + 1.0 || p[1] > max + 1.0) {
        return 0.0;
    }
    let (x0, y0) = (p[0].floor(), p[1].floor());
    let (fx, fy) = ((p[0] - x0) as f32, (p[1] - y0) as f32);
    let at = |x: f64, y: f64| {
        if replicate {
            plane[y.clamp(0.0, max) as usize * r + x.clamp(0.0, max) as usize]
        } else if x < 0.0 || y < 0.0 || x > max || y > max {
            0.0
        } else {
            plane[y as usize * r + x as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Bilinear RGB sample with border replicate, in [0, 1].
fn sample_rgb(rgb: &[u8], r: usize, p: [f64; 2]) -> [f32; 3] {
    let max = (r - 1) as f64;
    let (x, y) = (p[0].clamp(0.0, max), p[1].clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(r - 1), (y0 + 1).min(r - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let px = |x: usize, y: usize, c: usize| rgb[(y * r + x) * 3 + c] as f32;
    let mut out = [0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
        let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
        *o = (top * (1.0 - fy) + bottom * fy) / 255.0;
    }
    out
}

/// Shifts hue (turns), saturation and value, clamped.
pub fn shift_hsv(rgb: [f32; 3], (dh, ds, dv): (f64, f64, f64)) -> [f32; 3] {
    let [r, g, b] = rgb.map(|v| v as f64);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let mut h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    } / 6.0;
    let s = if max == 0.0 { 0.0 } else { d / max };
    h = (h + dh).rem_euclid(1.0);
    let (s, v) = ((s + ds).clamp(0.0, 1.0), (max + dv).clamp(0.0, 1.0));
    let c = v * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
    let (r1, g1, b1) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r1 + m) as f32, (g1 + m) as f32, (b1 + m) as f32]
}

/// Convex hull (Andrew's monotone chain), counter-clockwise in image axes. Written here: a
/// dozen lines, not worth a geometry crate.
pub fn convex_hull(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut p: Vec<[f64; 2]> = points.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// Rasterises a convex polygon: 1 where the pixel centre is inside (or on an edge).
pub fn fill_convex(poly: &[[f64; 2]], r: usize) -> Vec<f32> {
    let mut out = vec![0f32; r * r];
    if poly.len() < 3 {
        return out;
    }
    let n = poly.len();
    for y in 0..r {
        for x in 0..r {
            let (px, py) = (x as f64, y as f64);
            let (mut pos, mut neg) = (false, false);
            for i in 0..n {
                let (a, b) = (poly[i], poly[(i + 1) % n]);
                let c = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]);
                pos |= c > 0.0;
                neg |= c < 0.0;
            }
            if !(pos && neg) {
                out[y * r + x] = 1.0;
            }
        }
    }
    out
}

/// Separable Gaussian blur with edge clamping (σ in pixels, kernel ±3σ).
pub fn gaussian_blur(plane: &[f32], r: usize, sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let clamp = |v: isize| v.clamp(0, r as isize - 1) as usize;
    let mut tmp = vec![0f32; r * r];
    for y in 0..r {
        for x in 0..r {
            tmp[y * r + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| w * plane[y * r + clamp(x as isize + k as isize - radius)])
                .sum();
        }
    }
    let mut out = vec![0f32; r * r];
    for y in 0..r {
        for x in 0..r {
            out[y * r + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| w * tmp[clamp(y as isize + k as isize - radius) * r + x])
                .sum();
        }
    }
    out
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
            centering: crate::extract::geometry::Centering::DflFull,
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
