//! The distribution transfers: Pitié's iterative distribution transfer (idt), sliced optimal
//! transport with bilateral regularisation (sot), and mix (lct lightness, sot chroma).

use nalgebra::{Matrix3, Vector3};
use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};
use rand_distr::{Distribution, StandardNormal};

use super::*;

// --- idt ---

/// DFL merges with 20 rotations; its relaxation of 1/20 leaves the marginals far from the
/// target's, so we step fully each rotation (relaxation 1, as Faceswap++ and Pitié's paper do).
pub(super) const IDT_ROTATIONS: usize = 20;
const IDT_BINS: usize = 256;

/// A uniformly random rotation (a unit quaternion from four normal draws).
fn random_rotation(rng: &mut Xoshiro256PlusPlus) -> Matrix3<f64> {
    let mut q = [0f64; 4];
    for v in q.iter_mut() {
        *v = StandardNormal.sample(rng);
    }
    let n = q.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    let [w, x, y, z] = q.map(|v| v / n);
    Matrix3::new(
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y - z * w),
        2.0 * (x * z + y * w),
        2.0 * (x * y + z * w),
        1.0 - 2.0 * (x * x + z * z),
        2.0 * (y * z - x * w),
        2.0 * (x * z - y * w),
        2.0 * (y * z + x * w),
        1.0 - 2.0 * (x * x + y * y),
    )
}

/// A monotone 1-D map sending the distribution of `from` onto that of `to` (histogram CDFs
/// over a shared range, `bins` bins), evaluated by linear interpolation.
struct CdfMap {
    lo: f32,
    step: f32,
    /// Destination value at each bin edge (`bins + 1` entries).
    values: Vec<f32>,
}

impl CdfMap {
    fn new(from: &[f32], to: &[f32], bins: usize) -> CdfMap {
        let fold = |v: &[f32]| {
            v.iter()
                .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(*x), b.max(*x)))
        };
        let ((a0, b0), (a1, b1)) = (fold(from), fold(to));
        let (lo, hi) = (a0.min(a1), b0.max(b1));
        let step = ((hi - lo) / bins as f32).max(1e-12);
        let hist = |v: &[f32]| {
            let mut h = vec![0f64; bins];
            for x in v {
                let i = (((x - lo) / step) as usize).min(bins - 1);
                h[i] += 1.0;
            }
            // CDF at each bin edge, 0 at the first.
            let mut cdf = Vec::with_capacity(bins + 1);
            let mut acc = 0.0;
            cdf.push(0.0);
            for c in &h {
                acc += c;
                cdf.push(acc / v.len() as f64);
            }
            cdf
        };
        let (cf, ct) = (hist(from), hist(to));
        let edge = |i: usize| lo + step * i as f32;
        // For each edge of `from`, the `to` value with the same CDF (inverse by interpolation).
        let mut values = Vec::with_capacity(bins + 1);
        let mut j = 0;
        for &q in &cf {
            while j + 1 < ct.len() && ct[j + 1] < q {
                j += 1;
            }
            let v = if j + 1 >= ct.len() {
                edge(bins)
            } else {
                let (c0, c1) = (ct[j], ct[j + 1]);
                let t = if c1 > c0 {
                    ((q - c0) / (c1 - c0)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                edge(j) + step * t as f32
            };
            values.push(v);
        }
        CdfMap { lo, step, values }
    }

    fn apply(&self, x: f32) -> f32 {
        let t = ((x - self.lo) / self.step).clamp(0.0, (self.values.len() - 1) as f32);
        let i = (t as usize).min(self.values.len() - 2);
        let f = t - i as f32;
        self.values[i] * (1.0 - f) + self.values[i + 1] * f
    }
}

fn rotate(px: &[Rgb], r: &Matrix3<f32>) -> [Vec<f32>; 3] {
    let mut out = [
        Vec::with_capacity(px.len()),
        Vec::with_capacity(px.len()),
        Vec::with_capacity(px.len()),
    ];
    for p in px {
        let v = r * Vector3::new(p[0], p[1], p[2]);
        for c in 0..3 {
            out[c].push(v[c]);
        }
    }
    out
}

/// Iterative distribution transfer: in each random rotation, match every axis's CDF.
pub(super) fn idt(face: &mut [Rgb], src: &[Rgb], dst: &[Rgb], rotations: usize, seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x1d7);
    let mut src = src.to_vec();
    for _ in 0..rotations {
        let r = random_rotation(&mut rng).cast::<f32>();
        let rt = r.transpose();
        let (rs, rd) = (rotate(&src, &r), rotate(dst, &r));
        let maps: Vec<CdfMap> = (0..3)
            .map(|c| CdfMap::new(&rs[c], &rd[c], IDT_BINS))
            .collect();
        let step = |p: &mut Rgb| {
            let v = r * Vector3::new(p[0], p[1], p[2]);
            let moved = Vector3::new(
                maps[0].apply(v[0]),
                maps[1].apply(v[1]),
                maps[2].apply(v[2]),
            );
            let back = rt * moved;
            *p = [back[0], back[1], back[2]];
        };
        src.iter_mut().for_each(step);
        face.iter_mut().for_each(step);
    }
    for p in face.iter_mut() {
        *p = p.map(|c| c.clamp(0.0, 1.0));
    }
}

// --- sot ---

/// DFL's merger: 10 steps of 30 directions each.
const SOT_STEPS: usize = 10;
const SOT_BATCH: usize = 30;

/// Sliced OT in `dims` (2 or 3) channels: each step moves every pixel along random directions by
/// the 1-D transport of its projection, averaged over the batch. Then the change is smoothed by a
/// bilateral filter (σ_xy 16, σ_v 5, as DFL) so neighbouring pixels move alike.
fn sliced_ot<const N: usize>(
    face: &mut [[f32; N]],
    src: &[[f32; N]],
    dst: &[[f32; N]],
    width: usize,
    valid: &Option<Vec<bool>>,
    seed: u64,
) {
    let (steps, batch) = (SOT_STEPS, SOT_BATCH);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x50f);
    let original = face.to_vec();
    let mut src = src.to_vec();
    let project = |p: &[f32; N], d: &[f32; N]| p.iter().zip(d).map(|(a, b)| a * b).sum::<f32>();
    for _ in 0..steps {
        let mut advect_face = vec![[0f32; N]; face.len()];
        let mut advect_src = vec![[0f32; N]; src.len()];
        for _ in 0..batch {
            let mut d = [0f32; N];
            for v in d.iter_mut() {
                *v = StandardNormal.sample(&mut rng);
            }
            let n = d.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            d.iter_mut().for_each(|v| *v /= n);
            let mut ps: Vec<f32> = src.iter().map(|p| project(p, &d)).collect();
            let mut pt: Vec<f32> = dst.iter().map(|p| project(p, &d)).collect();
            let unsorted = ps.clone();
            ps.sort_by(f32::total_cmp);
            pt.sort_by(f32::total_cmp);
            // Value at quantile q of the destination, by rank.
            let quantile = |q: f32| {
                let t = (q * (pt.len() - 1) as f32).clamp(0.0, (pt.len() - 1) as f32);
                let i = (t as usize).min(pt.len().saturating_sub(2));
                let f = t - i as f32;
                pt[i] * (1.0 - f) + pt.get(i + 1).copied().unwrap_or(pt[i]) * f
            };
            // Rank of a projection among the source's, as a fraction.
            let rank = |v: f32| {
                let i = ps.partition_point(|x| *x < v);
                if ps.len() < 2 {
                    return 0.0;
                }
                let lo = i.saturating_sub(1);
                let hi = i.min(ps.len() - 1);
                let f = if hi > lo && ps[hi] > ps[lo] {
                    ((v - ps[lo]) / (ps[hi] - ps[lo])).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (lo as f32 + f) / (ps.len() - 1) as f32
            };
            for (p, a) in face.iter().zip(advect_face.iter_mut()) {
                let v = project(p, &d);
                let shift = quantile(rank(v)) - v;
                for c in 0..N {
                    a[c] += shift * d[c];
                }
            }
            for (v, a) in unsorted.iter().zip(advect_src.iter_mut()) {
                let shift = quantile(rank(*v)) - v;
                for c in 0..N {
                    a[c] += shift * d[c];
                }
            }
        }
        for (p, a) in face.iter_mut().zip(&advect_face) {
            for c in 0..N {
                p[c] += a[c] / batch as f32;
            }
        }
        for (p, a) in src.iter_mut().zip(&advect_src) {
            for c in 0..N {
                p[c] += a[c] / batch as f32;
            }
        }
    }
    if width > 0 && face.len().is_multiple_of(width) {
        let diff: Vec<[f32; N]> = face
            .iter()
            .zip(&original)
            .map(|(a, b)| std::array::from_fn(|c| a[c] - b[c]))
            .collect();
        let smooth = bilateral(&diff, width, face.len() / width, valid, 16.0, 5.0);
        for ((p, o), s) in face.iter_mut().zip(&original).zip(&smooth) {
            for c in 0..N {
                p[c] = o[c] + s[c];
            }
        }
    }
}

pub(super) fn sot(
    face: &mut [Rgb],
    src: &[Rgb],
    dst: &[Rgb],
    width: usize,
    valid: &Option<Vec<bool>>,
    seed: u64,
) {
    sliced_ot(face, src, dst, width, valid, seed);
    for p in face.iter_mut() {
        *p = p.map(|c| c.clamp(0.0, 1.0));
    }
}

/// A bilateral filter as OpenCV's `bilateralFilter(src, 0, σ_v, σ_xy)`: a disc of radius
/// round(1.5·σ_xy), Gaussian weights on distance and on the value difference. Only `valid`
/// pixels (all when None) contribute.
fn bilateral<const N: usize>(
    img: &[[f32; N]],
    w: usize,
    h: usize,
    valid: &Option<Vec<bool>>,
    sigma_xy: f32,
    sigma_v: f32,
) -> Vec<[f32; N]> {
    let radius = (sigma_xy * 1.5).round() as isize;
    let (gs, gv) = (-0.5 / (sigma_xy * sigma_xy), -0.5 / (sigma_v * sigma_v));
    let mut offsets = Vec::new();
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let r2 = (dx * dx + dy * dy) as f32;
            if r2 <= (radius * radius) as f32 {
                offsets.push((dx, dy, (r2 * gs).exp()));
            }
        }
    }
    let mut out = vec![[0f32; N]; img.len()];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let c = img[(y as usize) * w + x as usize];
            let (mut acc, mut total) = ([0f32; N], 0f32);
            for &(dx, dy, ws) in &offsets {
                // Borders reflect, as OpenCV's default.
                let (sx, sy) = (reflect(x + dx, w), reflect(y + dy, h));
                if valid.as_ref().is_some_and(|v| !v[sy * w + sx]) {
                    continue;
                }
                let p = img[sy * w + sx];
                let d2: f32 = (0..N).map(|k| (p[k] - c[k]).powi(2)).sum();
                let wt = ws * (d2 * gv).exp();
                for k in 0..N {
                    acc[k] += p[k] * wt;
                }
                total += wt;
            }
            out[(y as usize) * w + x as usize] = acc.map(|a| a / total.max(1e-12));
        }
    }
    out
}

fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let mut i = i;
    while i < 0 || i >= n {
        i = if i < 0 { -i - 1 } else { 2 * n - i - 1 };
    }
    i as usize
}

/// Lightness by lct (mean and spread of L), chroma by sliced OT on (a, b).
pub(super) fn mix(
    face: &mut [Rgb],
    src: &[Rgb],
    dst: &[Rgb],
    width: usize,
    valid: &Option<Vec<bool>>,
    seed: u64,
) {
    let lab = |v: &[Rgb]| v.iter().map(|p| rgb_to_lab(*p)).collect::<Vec<_>>();
    let (ls, ld) = (lab(src), lab(dst));
    let (ms, ss) = channel_mean_std(&ls, 0);
    let (md, sd) = channel_mean_std(&ld, 0);
    let k = ((sd * sd + 1e-5).sqrt() / (ss * ss + 1e-5).sqrt()) as f32;
    let mut face_lab: Vec<[f32; 3]> = face.iter().map(|p| rgb_to_lab(*p)).collect();
    // a, b scaled to about [−1, 1] so σ_v keeps DFL's meaning on [0, 1] data.
    let ab = |v: &[[f32; 3]]| {
        v.iter()
            .map(|p| [p[1] / 127.0, p[2] / 127.0])
            .collect::<Vec<_>>()
    };
    let mut face_ab = ab(&face_lab);
    sliced_ot(&mut face_ab, &ab(&ls), &ab(&ld), width, valid, seed);
    for (p, q) in face_lab.iter_mut().zip(&face_ab) {
        p[0] = ((p[0] - ms as f32) * k + md as f32).clamp(0.0, 100.0);
        p[1] = (q[0] * 127.0).clamp(-127.0, 127.0);
        p[2] = (q[1] * 127.0).clamp(-127.0, 127.0);
    }
    for (p, l) in face.iter_mut().zip(&face_lab) {
        *p = lab_to_rgb(*l);
    }
}
