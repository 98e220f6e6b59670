//! Colour transfer from the destination face onto the predicted face before blending: DFL's
//! rct / lct / mkl / idt / sot / mix (`core/imagelib/color_transfer.py`) and faceswap's
//! avg-color, match-hist and manual balance (`plugins/convert/color/*.py`).
//!
//! Pixels are RGB in [0, 1]. Statistics come from the pixels inside the mask (weight ≥ 0.5) —
//! the correct masked statistics — or, with [`MaskStatistics::DflParity`], from every pixel with
//! the outside ones zeroed, as DFL's `-m` variants compute them. The transform found is applied
//! to every pixel of the face.

use nalgebra::{Matrix3, SymmetricEigen, Vector3};

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

mod distribution;
use distribution::{IDT_ROTATIONS, idt, mix, sot};

#[cfg(test)]
mod tests;
