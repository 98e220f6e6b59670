//! Colour transfer from the destination face onto the predicted face before blending: DFL's
//! rct / lct / mkl / idt / sot / mix (`core/imagelib/color_transfer.py`) and faceswap's
//! avg-color, match-hist and manual balance (`plugins/convert/color/*.py`).
//!
//! Pixels are RGB in [0, 1]. Statistics come from the pixels inside the mask (weight ≥ 0.5) —
//! the correct masked statistics — or, with [`MaskStatistics::DflParity`], from every pixel with
//! the outside ones zeroed, as DFL's `-m` variants compute them. The transform found is applied
//! to every pixel of the face.

use nalgebra::{Matrix3, SymmetricEigen, Vector3};
use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};
use rand_distr::{Distribution, StandardNormal};

/// An RGB pixel, each channel in [0, 1].
pub type Rgb = [f32; 3];

/// Which colour transfer runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColorTransfer {
    /// The predicted colours as they are.
    None,
    /// Reinhard: per-channel mean and standard deviation in LAB.
    Rct,
    /// Linear (PCA) transfer of the RGB mean and covariance.
    Lct,
    /// Monge–Kantorovich linear map of the RGB mean and covariance.
    Mkl,
    /// Pitié's iterative distribution transfer (random 3-D rotations, per-axis CDF matching).
    Idt,
    /// Sliced optimal transport with bilateral regularisation.
    Sot,
    /// Lightness by lct, chroma (a, b) by sot.
    Mix,
    /// faceswap avg-color: add the difference of the mean colours.
    AvgColor,
    /// faceswap match-hist: per-channel histogram matching.
    MatchHist,
    /// faceswap manual balance.
    Manual(ManualBalance),
}

impl ColorTransfer {
    /// The transfer a mode names (manual balance takes its values from `manual`).
    pub fn from_mode(mode: ColorTransferMode, manual: ManualBalance) -> Self {
        match mode {
            ColorTransferMode::None => ColorTransfer::None,
            ColorTransferMode::Rct => ColorTransfer::Rct,
            ColorTransferMode::Lct => ColorTransfer::Lct,
            ColorTransferMode::Mkl => ColorTransfer::Mkl,
            ColorTransferMode::Idt => ColorTransfer::Idt,
            ColorTransferMode::Sot => ColorTransfer::Sot,
            ColorTransferMode::Mix => ColorTransfer::Mix,
            ColorTransferMode::AvgColor => ColorTransfer::AvgColor,
            ColorTransferMode::MatchHist => ColorTransfer::MatchHist,
            ColorTransferMode::Manual => ColorTransfer::Manual(manual),
        }
    }
}

/// How a mask limits the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskStatistics {
    /// Only pixels inside the mask count (weight ≥ 0.5).
    #[default]
    InsideMask,
    /// DFL parity: every pixel counts, the ones outside the mask as black.
    DflParity,
}

pub use faceswap_options::{BalanceSpace, ColorTransferMode};

/// faceswap's manual balance: a shift per channel of the chosen space, then contrast and
/// brightness, each in −100…100 %.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ManualBalance {
    /// The colour space of `balance`.
    pub space: BalanceSpace,
    /// Per-channel shift, percent of the channel's range.
    pub balance: [f32; 3],
    /// Contrast, percent.
    pub contrast: f32,
    /// Brightness, percent.
    pub brightness: f32,
}

/// A mask and how it limits the statistics.
#[derive(Debug, Clone, Copy)]
pub struct StatsMask<'a> {
    /// One weight per pixel, in [0, 1].
    pub weights: &'a [f32],
    /// Inside-only or DFL parity.
    pub statistics: MaskStatistics,
}

/// Recolours `face` (row-major, `width` wide) so its colours follow `target`'s (the destination
/// face under the same crop). `seed` fixes the random directions of idt / sot.
pub fn transfer(
    kind: ColorTransfer,
    face: &mut [Rgb],
    target: &[Rgb],
    width: usize,
    mask: Option<StatsMask>,
    seed: u64,
) {
    if face.is_empty() || face.len() != target.len() {
        return;
    }
    let src = samples(face, mask);
    let dst = samples(target, mask);
    if src.len() < 2 || dst.len() < 2 {
        return; // nothing to measure: leave the face as predicted
    }
    match kind {
        ColorTransfer::None => {}
        ColorTransfer::Rct => rct(face, &src, &dst),
        ColorTransfer::Lct => {
            let map = lct_map(&src, &dst);
            apply_linear(face, &map);
        }
        ColorTransfer::Mkl => {
            let map = mkl_map(&src, &dst);
            apply_linear(face, &map);
        }
        ColorTransfer::Idt => idt(face, &src, &dst, IDT_ROTATIONS, seed),
        ColorTransfer::Sot => sot(face, &src, &dst, width, &inside(mask), seed),
        ColorTransfer::Mix => mix(face, &src, &dst, width, &inside(mask), seed),
        ColorTransfer::AvgColor => {
            let (ms, md) = (mean(&src), mean(&dst));
            for p in face.iter_mut() {
                for c in 0..3 {
                    p[c] = (p[c] + (md[c] - ms[c]) as f32).clamp(0.0, 1.0);
                }
            }
        }
        ColorTransfer::MatchHist => match_hist(face, &src, &dst, MATCH_HIST_THRESHOLD),
        ColorTransfer::Manual(m) => manual(face, &m),
    }
}

/// Which pixels sot's smoothing may draw from: with inside-only statistics, the ones inside.
fn inside(mask: Option<StatsMask>) -> Option<Vec<bool>> {
    match mask {
        Some(StatsMask {
            weights,
            statistics: MaskStatistics::InsideMask,
        }) => Some(weights.iter().map(|w| *w >= 0.5).collect()),
        _ => None,
    }
}

/// Pixels the statistics use.
fn samples(px: &[Rgb], mask: Option<StatsMask>) -> Vec<Rgb> {
    match mask {
        None => px.to_vec(),
        Some(m) if m.weights.len() != px.len() => px.to_vec(),
        Some(StatsMask {
            weights,
            statistics: MaskStatistics::InsideMask,
        }) => px
            .iter()
            .zip(weights)
            .filter(|(_, w)| **w >= 0.5)
            .map(|(p, _)| *p)
            .collect(),
        Some(StatsMask {
            weights,
            statistics: MaskStatistics::DflParity,
        }) => px
            .iter()
            .zip(weights)
            .map(|(p, w)| if *w > 0.0 { *p } else { [0.0; 3] })
            .collect(),
    }
}

fn mean(px: &[Rgb]) -> Vector3<f64> {
    let mut m = Vector3::zeros();
    for p in px {
        m += Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64);
    }
    m / px.len() as f64
}

/// Mean and covariance, dividing by `n − ddof`.
fn mean_cov(px: &[Rgb], ddof: usize) -> (Vector3<f64>, Matrix3<f64>) {
    let m = mean(px);
    let mut c = Matrix3::zeros();
    for p in px {
        let d = Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64) - m;
        c += d * d.transpose();
    }
    (m, c / (px.len().saturating_sub(ddof).max(1)) as f64)
}

/// `x ↦ T (x − μs) + μt`, clipped to [0, 1].
struct LinearMap {
    t: Matrix3<f64>,
    from: Vector3<f64>,
    to: Vector3<f64>,
}

fn apply_linear(face: &mut [Rgb], map: &LinearMap) {
    let t = map.t.cast::<f32>();
    let (from, to) = (map.from.cast::<f32>(), map.to.cast::<f32>());
    for p in face.iter_mut() {
        let v = t * (Vector3::new(p[0], p[1], p[2]) - from) + to;
        *p = [
            v[0].clamp(0.0, 1.0),
            v[1].clamp(0.0, 1.0),
            v[2].clamp(0.0, 1.0),
        ];
    }
}

/// `E · f(Λ) · Eᵀ` of a symmetric matrix.
fn sym_fn(m: &Matrix3<f64>, f: impl Fn(f64) -> f64) -> Matrix3<f64> {
    let e = SymmetricEigen::new(*m);
    let d = Matrix3::from_diagonal(&e.eigenvalues.map(f));
    e.eigenvectors * d * e.eigenvectors.transpose()
}

/// DFL lct (pca mode): `Qt · Qs⁻¹` with `Q = E √Λ Eᵀ` of each covariance plus 1e-5·I.
fn lct_map(src: &[Rgb], dst: &[Rgb]) -> LinearMap {
    let eps = Matrix3::identity() * 1e-5;
    let (ms, cs) = mean_cov(src, 0);
    let (md, cd) = mean_cov(dst, 0);
    let qs_inv = sym_fn(&(cs + eps), |l| 1.0 / l.max(1e-12).sqrt());
    let qd = sym_fn(&(cd + eps), |l| l.max(0.0).sqrt());
    LinearMap {
        t: qd * qs_inv,
        from: ms,
        to: md,
    }
}

/// DFL mkl: `T = A^{-½} (A^{½} B A^{½})^{½} A^{-½}` with A, B the source and destination
/// covariances (sample covariance, as `np.cov`).
fn mkl_map(src: &[Rgb], dst: &[Rgb]) -> LinearMap {
    let eps = f64::EPSILON;
    let (ms, a) = mean_cov(src, 1);
    let (md, b) = mean_cov(dst, 1);
    let a_half = sym_fn(&a, |l| l.max(eps).sqrt());
    let a_inv_half = sym_fn(&a, |l| 1.0 / l.max(eps).sqrt());
    let c = a_half * b * a_half;
    let c = (c + c.transpose()) * 0.5;
    let c_half = sym_fn(&c, |l| l.max(eps).sqrt());
    LinearMap {
        t: a_inv_half * c_half * a_inv_half,
        from: ms,
        to: md,
    }
}

// --- LAB (OpenCV's float conversion: sRGB gamma, D65, L 0..100, a/b about ±127) ---

const XN: f32 = 0.950456;
const ZN: f32 = 1.088754;

/// sRGB in [0, 1] → OpenCV float LAB.
pub fn rgb_to_lab(p: Rgb) -> [f32; 3] {
    let lin = |c: f32| {
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(p[0]), lin(p[1]), lin(p[2]));
    let x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / XN;
    let y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
    let z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / ZN;
    let f = |t: f32| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let l = if y > 0.008856 {
        116.0 * y.cbrt() - 16.0
    } else {
        903.3 * y
    };
    [l, 500.0 * (f(x) - f(y)), 200.0 * (f(y) - f(z))]
}

/// OpenCV float LAB → sRGB in [0, 1] (clipped).
pub fn lab_to_rgb(p: [f32; 3]) -> Rgb {
    let [l, a, b] = p;
    let fy = (l + 16.0) / 116.0;
    let (fx, fz) = (fy + a / 500.0, fy - b / 200.0);
    let inv = |f: f32| {
        if f > 0.206893 {
            f * f * f
        } else {
            (f - 16.0 / 116.0) / 7.787
        }
    };
    let y = if l > 7.9996 { fy * fy * fy } else { l / 903.3 };
    let (x, z) = (inv(fx) * XN, inv(fz) * ZN);
    let r = 3.240479 * x - 1.53715 * y - 0.498535 * z;
    let g = -0.969256 * x + 1.875992 * y + 0.041556 * z;
    let bb = 0.055648 * x - 0.204043 * y + 1.057311 * z;
    let gamma = |c: f32| {
        let c = c.max(0.0);
        let v = if c <= 0.0031308 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        v.clamp(0.0, 1.0)
    };
    [gamma(r), gamma(g), gamma(bb)]
}

fn channel_mean_std(px: &[[f32; 3]], c: usize) -> (f64, f64) {
    let n = px.len() as f64;
    let m = px.iter().map(|p| p[c] as f64).sum::<f64>() / n;
    let v = px.iter().map(|p| (p[c] as f64 - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}

/// Reinhard in LAB: `(x − μs)·σt/σs + μt` per channel, clipped to L 0..100, a/b ±127.
fn rct(face: &mut [Rgb], src: &[Rgb], dst: &[Rgb]) {
    let to_lab = |v: &[Rgb]| v.iter().map(|p| rgb_to_lab(*p)).collect::<Vec<_>>();
    let (ls, ld) = (to_lab(src), to_lab(dst));
    let mut coef = [(0f32, 0f32, 0f32); 3];
    for (c, k) in coef.iter_mut().enumerate() {
        let (ms, ss) = channel_mean_std(&ls, c);
        let (md, sd) = channel_mean_std(&ld, c);
        *k = (ms as f32, (sd / ss.max(1e-6)) as f32, md as f32);
    }
    for p in face.iter_mut() {
        let lab = rgb_to_lab(*p);
        let mut out = [0f32; 3];
        for c in 0..3 {
            let (ms, k, md) = coef[c];
            out[c] = (lab[c] - ms) * k + md;
        }
        out[0] = out[0].clamp(0.0, 100.0);
        out[1] = out[1].clamp(-127.0, 127.0);
        out[2] = out[2].clamp(-127.0, 127.0);
        *p = lab_to_rgb(out);
    }
}

// --- idt ---

/// DFL merges with 20 rotations; its relaxation of 1/20 leaves the marginals far from the
/// target's, so we step fully each rotation (relaxation 1, as Faceswap++ and Pitié's paper do).
const IDT_ROTATIONS: usize = 20;
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
fn idt(face: &mut [Rgb], src: &[Rgb], dst: &[Rgb], rotations: usize, seed: u64) {
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

fn sot(
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
fn mix(
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

/// DFL hist-match: per-channel histogram matching of the face to the target. With a mask, both
/// count as white outside it, as DFL does; `threshold` (0…255) scales the face's quantiles.
pub fn hist_match(face: &mut [Rgb], target: &[Rgb], mask: Option<&[f32]>, threshold: u8) {
    if face.is_empty() || face.len() != target.len() {
        return;
    }
    let whiten = |v: &[Rgb]| -> Vec<Rgb> {
        match mask {
            Some(m) if m.len() == v.len() => v
                .iter()
                .zip(m)
                .map(|(p, w)| if *w > 0.0 { *p } else { [1.0; 3] })
                .collect(),
            _ => v.to_vec(),
        }
    };
    let (src, dst) = (whiten(face), whiten(target));
    match_hist(face, &src, &dst, threshold as f32 / 255.0);
}

// --- faceswap's match-hist and manual balance ---

/// faceswap's default threshold: the top 1 % of the source histogram is left out.
const MATCH_HIST_THRESHOLD: f32 = 0.99;

fn match_hist(face: &mut [Rgb], src: &[Rgb], dst: &[Rgb], threshold: f32) {
    for c in 0..3 {
        let cdf = |v: &[Rgb]| {
            let mut h = [0f64; 256];
            for p in v {
                h[(p[c].clamp(0.0, 1.0) * 255.0).round() as usize] += 1.0;
            }
            let mut acc = 0.0;
            h.map(|x| {
                acc += x;
                acc / v.len() as f64
            })
        };
        let (cs, cd) = (cdf(src), cdf(dst));
        let mut lut = [0f32; 256];
        let mut j = 0;
        for (i, q) in cs.iter().enumerate() {
            let q = q * threshold as f64;
            while j < 255 && cd[j] < q {
                j += 1;
            }
            lut[i] = j as f32 / 255.0;
        }
        for p in face.iter_mut() {
            let x = p[c].clamp(0.0, 1.0) * 255.0;
            let i = (x as usize).min(254);
            let f = x - i as f32;
            p[c] = lut[i] * (1.0 - f) + lut[i + 1] * f;
        }
    }
}

fn manual(face: &mut [Rgb], m: &ManualBalance) {
    let shift = m.balance.map(|b| b / 100.0);
    for p in face.iter_mut() {
        let mut v = match m.space {
            BalanceSpace::Rgb => {
                let mut q = *p;
                for c in 0..3 {
                    q[c] += shift[c];
                }
                q
            }
            BalanceSpace::Lab => {
                let mut l = rgb_to_lab(*p);
                l[0] += shift[0] * 100.0;
                l[1] += shift[1] * 127.0;
                l[2] += shift[2] * 127.0;
                lab_to_rgb(l)
            }
            BalanceSpace::YCrCb => {
                let [r, g, b] = *p;
                let y = 0.299 * r + 0.587 * g + 0.114 * b + shift[0];
                let cr = (r - y) * 0.713 + shift[1];
                let cb = (b - y) * 0.564 + shift[2];
                [y + 1.403 * cr, y - 0.714 * cr - 0.344 * cb, y + 1.773 * cb]
            }
            BalanceSpace::Hsv => {
                let [h, s, v] = rgb_to_hsv(*p);
                hsv_to_rgb([
                    (h + shift[0]).rem_euclid(1.0),
                    (s + shift[1]).clamp(0.0, 1.0),
                    (v + shift[2]).clamp(0.0, 1.0),
                ])
            }
        };
        for c in v.iter_mut() {
            *c = ((*c - 0.5) * (1.0 + m.contrast / 100.0) + 0.5 + m.brightness / 100.0)
                .clamp(0.0, 1.0);
        }
        *p = v;
    }
}

fn rgb_to_hsv([r, g, b]: Rgb) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max > 0.0 { d / max } else { 0.0 };
    [h, s, max]
}

fn hsv_to_rgb([h, s, v]: [f32; 3]) -> Rgb {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth colour field with a chosen mean and spread, in gamut (no clipping).
    fn field(w: usize, h: usize, base: Rgb, spread: f32, seed: u64) -> Vec<Rgb> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut mix = [[0f32; 3]; 3];
        for row in mix.iter_mut() {
            for v in row.iter_mut() {
                let n: f32 = StandardNormal.sample(&mut rng);
                *v = n * spread;
            }
        }
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 / w as f32, (i / w) as f32 / h as f32);
                let n: [f32; 3] = std::array::from_fn(|_| {
                    let z: f32 = StandardNormal.sample(&mut rng);
                    z * 0.3
                });
                let feats = [x - 0.5 + n[0], y - 0.5 + n[1], (x * y) - 0.25 + n[2]];
                std::array::from_fn(|c| {
                    (base[c] + (0..3).map(|k| mix[c][k] * feats[k]).sum::<f32>()).clamp(0.0, 1.0)
                })
            })
            .collect()
    }

    fn lab_stats(px: &[Rgb]) -> [(f64, f64); 3] {
        let lab: Vec<[f32; 3]> = px.iter().map(|p| rgb_to_lab(*p)).collect();
        std::array::from_fn(|c| channel_mean_std(&lab, c))
    }

    #[test]
    fn lab_round_trips() {
        for p in [
            [0.2, 0.5, 0.7],
            [0.9, 0.1, 0.3],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0],
        ] {
            let q = lab_to_rgb(rgb_to_lab(p));
            for c in 0..3 {
                assert!((p[c] - q[c]).abs() < 1e-3, "{p:?} → {q:?}");
            }
        }
        // OpenCV: white is L 100, a = b = 0.
        let w = rgb_to_lab([1.0; 3]);
        assert!((w[0] - 100.0).abs() < 0.01 && w[1].abs() < 0.01 && w[2].abs() < 0.01);
    }

    #[test]
    fn rct_matches_lab_mean_and_spread() {
        let face = field(48, 48, [0.55, 0.45, 0.40], 0.08, 1);
        let target = field(48, 48, [0.60, 0.50, 0.42], 0.10, 2);
        let mut out = face.clone();
        transfer(ColorTransfer::Rct, &mut out, &target, 48, None, 0);
        let (o, t) = (lab_stats(&out), lab_stats(&target));
        for c in 0..3 {
            println!(
                "rct LAB channel {c}: mean {:.3} vs {:.3}, std {:.3} vs {:.3}",
                o[c].0, t[c].0, o[c].1, t[c].1
            );
            assert!((o[c].0 - t[c].0).abs() < 0.15, "mean channel {c}");
            assert!(
                (o[c].1 - t[c].1).abs() < 0.05 * t[c].1 + 0.05,
                "std channel {c}"
            );
        }
    }

    fn assert_cov_matches(out: &[Rgb], target: &[Rgb], ddof: usize, tol: f64, what: &str) {
        let (mo, co) = mean_cov(out, ddof);
        let (mt, ct) = mean_cov(target, ddof);
        let dm = (mo - mt).abs().max();
        let dc = (co - ct).abs().max();
        println!("{what}: mean error {dm:.2e}, covariance error {dc:.2e}");
        assert!(dm < 1e-3, "{what} mean off by {dm}");
        assert!(dc < tol, "{what} covariance off by {dc}");
    }

    #[test]
    fn lct_and_mkl_match_mean_and_covariance() {
        let face = field(64, 64, [0.5, 0.42, 0.38], 0.06, 3);
        let target = field(64, 64, [0.58, 0.47, 0.4], 0.09, 4);
        let mut out = face.clone();
        transfer(ColorTransfer::Lct, &mut out, &target, 64, None, 0);
        // DFL's ε·I on both covariances leaves an error of about ε·σt²/σs².
        assert_cov_matches(&out, &target, 0, 1e-3, "lct");
        let mut out = face.clone();
        transfer(ColorTransfer::Mkl, &mut out, &target, 64, None, 0);
        assert_cov_matches(&out, &target, 1, 1e-3, "mkl");
    }

    /// Kolmogorov–Smirnov distance between two samples.
    fn ks(a: &[f32], b: &[f32]) -> f64 {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        let (mut i, mut j, mut d) = (0, 0, 0f64);
        while i < a.len() && j < b.len() {
            let x = a[i].min(b[j]);
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
            d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
        }
        d
    }

    #[test]
    fn idt_matches_marginal_histograms() {
        let face = field(64, 64, [0.45, 0.4, 0.35], 0.07, 5);
        // A target that no linear map reaches: a mixture of two colour clusters.
        let mut target = field(64, 64, [0.7, 0.5, 0.4], 0.04, 6);
        for p in target.iter_mut().step_by(3) {
            *p = [p[0] - 0.3, p[1] - 0.1, p[2] + 0.15];
        }
        let mut out = face.clone();
        transfer(ColorTransfer::Idt, &mut out, &target, 64, None, 7);
        for c in 0..3 {
            let o: Vec<f32> = out.iter().map(|p| p[c]).collect();
            let t: Vec<f32> = target.iter().map(|p| p[c]).collect();
            let f: Vec<f32> = face.iter().map(|p| p[c]).collect();
            let (before, after) = (ks(&f, &t), ks(&o, &t));
            println!("idt channel {c}: KS {before:.3} → {after:.3}");
            assert!(after < 0.05, "channel {c} KS {after}");
        }
    }

    #[test]
    fn masked_statistics_ignore_pixels_outside_the_mask() {
        let (w, h) = (40, 40);
        let face = field(w, h, [0.5, 0.45, 0.4], 0.06, 8);
        let target = field(w, h, [0.6, 0.5, 0.45], 0.08, 9);
        let mask: Vec<f32> = (0..w * h)
            .map(|i| if (i % w) < w / 2 { 1.0 } else { 0.0 })
            .collect();
        // Outside the mask: wild colours that would dominate any unmasked statistic.
        let scramble = |v: &[Rgb], k: f32| {
            v.iter()
                .zip(&mask)
                .map(|(p, m)| if *m > 0.5 { *p } else { [k, 1.0 - k, k] })
                .collect::<Vec<_>>()
        };
        for kind in [
            ColorTransfer::Rct,
            ColorTransfer::Lct,
            ColorTransfer::Mkl,
            ColorTransfer::Idt,
            ColorTransfer::Sot,
            ColorTransfer::Mix,
            ColorTransfer::AvgColor,
            ColorTransfer::MatchHist,
        ] {
            let stats = StatsMask {
                weights: &mask,
                statistics: MaskStatistics::InsideMask,
            };
            let mut clean = face.clone();
            transfer(kind, &mut clean, &target, w, Some(stats), 11);
            let mut noisy = scramble(&face, 0.95);
            transfer(
                kind,
                &mut noisy,
                &scramble(&target, 0.05),
                w,
                Some(stats),
                11,
            );
            for (i, m) in mask.iter().enumerate() {
                if *m > 0.5 {
                    for c in 0..3 {
                        let d = (clean[i][c] - noisy[i][c]).abs();
                        assert!(d < 1e-5, "{kind:?} pixel {i} channel {c} differs by {d}");
                    }
                }
            }
            // With DFL parity the zeroed outside pixels do move the statistics.
            let parity = StatsMask {
                weights: &mask,
                statistics: MaskStatistics::DflParity,
            };
            if matches!(
                kind,
                ColorTransfer::Rct | ColorTransfer::Mkl | ColorTransfer::Lct
            ) {
                let mut p = face.clone();
                transfer(kind, &mut p, &target, w, Some(parity), 11);
                let moved = p
                    .iter()
                    .zip(&clean)
                    .any(|(a, b)| (0..3).any(|c| (a[c] - b[c]).abs() > 1e-3));
                assert!(moved, "{kind:?}: DFL parity must count the zeroed pixels");
            }
        }
    }

    #[test]
    fn sot_moves_the_mean_towards_the_target() {
        let face = field(32, 32, [0.4, 0.4, 0.4], 0.05, 12);
        let target = field(32, 32, [0.6, 0.5, 0.3], 0.05, 13);
        let mut out = face.clone();
        transfer(ColorTransfer::Sot, &mut out, &target, 32, None, 1);
        let (mf, mo, mt) = (mean(&face), mean(&out), mean(&target));
        println!(
            "sot mean distance {:.3} → {:.3}",
            (mf - mt).norm(),
            (mo - mt).norm()
        );
        assert!((mo - mt).norm() < 0.25 * (mf - mt).norm());
    }

    #[test]
    fn manual_balance_and_avg_color_shift_as_configured() {
        let face = vec![[0.5f32, 0.5, 0.5]; 16];
        let mut out = face.clone();
        let m = ManualBalance {
            space: BalanceSpace::Rgb,
            balance: [10.0, 0.0, -10.0],
            contrast: 0.0,
            brightness: 0.0,
        };
        transfer(ColorTransfer::Manual(m), &mut out, &face, 4, None, 0);
        assert!((out[0][0] - 0.6).abs() < 1e-6 && (out[0][2] - 0.4).abs() < 1e-6);
        let target = vec![[0.6f32, 0.5, 0.4]; 16];
        let mut out = face.clone();
        transfer(ColorTransfer::AvgColor, &mut out, &target, 4, None, 0);
        assert!((out[3][0] - 0.6).abs() < 1e-6 && (out[3][2] - 0.4).abs() < 1e-6);
        for p in [[0.2, 0.6, 0.9], [0.9, 0.3, 0.1]] {
            let q = hsv_to_rgb(rgb_to_hsv(p));
            assert!((0..3).all(|c| (p[c] - q[c]).abs() < 1e-5));
        }
    }
}
