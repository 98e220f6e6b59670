//! faceswap's image losses (lib/model/losses/loss.py, plugins/train/_config.py), added to DFL's
//! DSSIM and MSE: MAE, log-cosh, MS-SSIM, GMSD, focal frequency, Laplacian pyramid, and the
//! weighted combination of up to four of them faceswap trains with. Every loss takes
//! `[B, C, H, W]` images in [0, 1] and returns the batch mean (a `[1]` tensor).

use burn::tensor::module::{avg_pool2d, conv2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::ssim::{dssim, gaussian_filter, ssim_parts};

/// One of the image losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageLoss {
    /// DFL's DSSIM with this window.
    Dssim(usize),
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// `log(cosh(x))`: quadratic near 0, linear far out.
    LogCosh,
    /// `1 − MS-SSIM` over five scales with faceswap's (TensorFlow's) powers (fewer scales for
    /// images under 48 px, whose coarsest scales hold no window).
    MsSsim,
    /// Gradient magnitude similarity deviation (Xue et al. 2014).
    Gmsd,
    /// Focal frequency loss (Jiang et al. 2021), alpha 1, whole image.
    FocalFrequency,
    /// Laplacian pyramid L1 (Bojanowski et al. 2018), five levels, 5 × 5 Gaussian σ 1.
    LaplacianPyramid,
}

impl ImageLoss {
    /// Parses faceswap's option names (`ssim`, `ms_ssim`, `gmsd`, `mae`, `mse`, `logcosh`,
    /// `ffl`, `laploss`); `ssim` takes DFL's window for `resolution`.
    pub fn parse(name: &str, resolution: usize) -> Option<ImageLoss> {
        Some(match name {
            "ssim" | "dssim" => ImageLoss::Dssim(crate::ssim::dssim_kernel(resolution)),
            "mse" => ImageLoss::Mse,
            "mae" => ImageLoss::Mae,
            "logcosh" => ImageLoss::LogCosh,
            "ms_ssim" => ImageLoss::MsSsim,
            "gmsd" => ImageLoss::Gmsd,
            "ffl" => ImageLoss::FocalFrequency,
            "laploss" => ImageLoss::LaplacianPyramid,
            _ => return None,
        })
    }

    /// The loss of `pred` against `target`, batch mean.
    pub fn loss(&self, pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
        match *self {
            ImageLoss::Dssim(k) => dssim(pred, target, 1.0, k).mean(),
            ImageLoss::Mse => (pred - target).powf_scalar(2.0).mean(),
            ImageLoss::Mae => (pred - target).abs().mean(),
            ImageLoss::LogCosh => log_cosh(pred, target),
            ImageLoss::MsSsim => ms_ssim_loss(pred, target),
            ImageLoss::Gmsd => gmsd(pred, target),
            ImageLoss::FocalFrequency => focal_frequency(pred, target),
            ImageLoss::LaplacianPyramid => laplacian_pyramid(pred, target),
        }
    }
}

/// faceswap's weighted sum of up to four losses (`loss_function`, `loss_function_2..4` with
/// their weights); an empty list is an error at parse time, not here.
pub fn combined_loss(pred: Tensor<4>, target: Tensor<4>, losses: &[(ImageLoss, f32)]) -> Tensor<1> {
    let device = pred.device();
    losses
        .iter()
        .fold(Tensor::zeros([1], &device), |acc, (l, w)| {
            acc + l.loss(pred.clone(), target.clone()).mul_scalar(*w)
        })
}

/// `mean(log(cosh(x)))`, computed as `|x| + log(1 + e^(−2|x|)) − log 2` so large errors do not
/// overflow.
fn log_cosh(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let x = (pred - target).abs();
    let soft = x.clone().mul_scalar(-2.0).exp().add_scalar(1.0).log();
    (x + soft).sub_scalar(std::f32::consts::LN_2).mean()
}

/// TensorFlow's `ssim_multiscale` powers (faceswap's MS-SSIM).
pub const MS_SSIM_POWERS: [f32; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// The window MS-SSIM uses at an image side: 11 (faceswap), shrunk so the coarsest of the five
/// scales still holds one window, odd, at least 3.
pub fn ms_ssim_window(side: usize) -> usize {
    let k = (side >> 4).clamp(3, 11);
    if k.is_multiple_of(2) { k - 1 } else { k }
}

/// `1 − MS-SSIM`: contrast-structure at every scale, luminance at the coarsest, each mean
/// clamped at 0 (TensorFlow's relu) and raised to its power; images halved by 2 × 2 average
/// pooling between scales.
fn ms_ssim_loss(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [batch, ch, h, _] = pred.dims();
    let k = ms_ssim_window(h);
    // Small images keep the scales that still hold a window (TensorFlow refuses them).
    let scales = (0..MS_SSIM_POWERS.len())
        .take_while(|s| h >> s >= k)
        .count()
        .max(1);
    let (mut a, mut b) = (pred, target);
    let mut value: Option<Tensor<2>> = None;
    for (scale, power) in MS_SSIM_POWERS.iter().take(scales).enumerate() {
        let (lum, cs) = ssim_parts(a.clone(), b.clone(), 1.0, k);
        let last = scale + 1 == scales;
        let map = if last { lum.mul(cs) } else { cs };
        let mean: Tensor<2> = map.flatten::<3>(2, 3).mean_dim(2).reshape([batch, ch]); // [B, C]
        let term = mean.clamp_min(0.0).add_scalar(1e-12).powf_scalar(*power);
        value = Some(match value {
            Some(v) => v.mul(term),
            None => term,
        });
        if !last {
            a = avg_pool2d(a, AvgPoolOptions::new([2, 2]));
            b = avg_pool2d(b, AvgPoolOptions::new([2, 2]));
        }
    }
    let device = a.device();
    value.map_or(Tensor::zeros([1], &device), |v| {
        v.neg().add_scalar(1.0).mean()
    })
}

/// A `[C, 1, 3, 3]` depthwise kernel from 9 weights.
fn kernel3(w: [f32; 9], ch: usize, device: &Device) -> Tensor<4> {
    let data: Vec<f32> = (0..ch).flat_map(|_| w).collect();
    Tensor::from_data(TensorData::new(data, [ch, 1, 3, 3]), device)
}

/// GMSD on each channel: 2 × 2 average pooling, Prewitt gradients (÷3, VALID), gradient
/// magnitude similarity `(2·g₁·g₂ + c) / (g₁² + g₂² + c)` with c = 0.0026 (the paper's 170 for
/// 0–255 images), its standard deviation over the image, mean over batch and channels.
fn gmsd(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [batch, ch, _, _] = pred.dims();
    let device = pred.device();
    let third = 1.0 / 3.0;
    let kx = kernel3(
        [third, 0.0, -third, third, 0.0, -third, third, 0.0, -third],
        ch,
        &device,
    );
    let ky = kernel3(
        [third, third, third, 0.0, 0.0, 0.0, -third, -third, -third],
        ch,
        &device,
    );
    let grad = |x: Tensor<4>| {
        let x = avg_pool2d(x, AvgPoolOptions::new([2, 2]));
        let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], ch);
        let gx = conv2d(x.clone(), kx.clone(), None, opts.clone());
        let gy = conv2d(x, ky.clone(), None, opts);
        (gx.powf_scalar(2.0) + gy.powf_scalar(2.0) + 1e-12).sqrt() // [B, C, h, w]
    };
    let (g1, g2) = (grad(pred), grad(target));
    let c = 0.0026;
    let gms = (g1.clone().mul(g2.clone()).mul_scalar(2.0).add_scalar(c))
        .div(g1.powf_scalar(2.0) + g2.powf_scalar(2.0) + c);
    let flat: Tensor<3> = gms.flatten::<3>(2, 3); // [B, C, hw]
    let mean = flat.clone().mean_dim(2); // [B, C, 1]
    let var = (flat - mean).powf_scalar(2.0).mean_dim(2); // [B, C, 1]
    let sd: Tensor<2> = var.add_scalar(1e-12).sqrt().reshape([batch, ch]);
    sd.mean()
}

/// The orthonormal DFT of side `n` as cosine and sine matrices `[n, n]`.
fn dft(n: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let scale = 1.0 / (n as f64).sqrt();
    let mut c = Vec::with_capacity(n * n);
    let mut s = Vec::with_capacity(n * n);
    for j in 0..n {
        for k in 0..n {
            let a = std::f64::consts::TAU * (j * k % n) as f64 / n as f64;
            c.push((a.cos() * scale) as f32);
            s.push((a.sin() * scale) as f32);
        }
    }
    (
        Tensor::from_data(TensorData::new(c, [n, n]), device),
        Tensor::from_data(TensorData::new(s, [n, n]), device),
    )
}

/// Focal frequency loss: the orthonormal 2D DFT of each channel (as matrix products, so it
/// runs on every backend), the spectrum distance `|F_pred − F_true|²` weighted by
/// `|F_pred − F_true|` scaled to [0, 1] per image and channel (the weights carry no gradient,
/// as in the paper), mean over frequencies, channels and batch.
fn focal_frequency(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [batch, ch, h, w] = pred.dims();
    let device = pred.device();
    let (ch_, sh) = dft(h, &device);
    let (cw, sw) = dft(w, &device);
    let spectrum = |x: Tensor<4>| {
        // X → (C_h − i·S_h) X (C_w − i·S_w)ᵀ, real and imaginary parts [B, C, H, W].
        let x3: Tensor<3> = x.reshape([batch * ch, h, w]);
        let left = |m: &Tensor<2>| m.clone().unsqueeze::<3>().matmul(x3.clone());
        let right = |y: Tensor<3>, m: &Tensor<2>| y.matmul(m.clone().transpose().unsqueeze::<3>());
        let (cx, sx) = (left(&ch_), left(&sh));
        let re = right(cx.clone(), &cw) - right(sx.clone(), &sw);
        let im = (right(cx, &sw) + right(sx, &cw)).neg();
        (re, im)
    };
    let (re_p, im_p) = spectrum(pred);
    let (re_t, im_t) = spectrum(target);
    let dist = (re_p - re_t).powf_scalar(2.0) + (im_p - im_t).powf_scalar(2.0); // [BC, H, W]
    let magnitude = dist.clone().add_scalar(1e-12).sqrt().detach();
    let flat: Tensor<2> = magnitude.clone().reshape([batch * ch, h * w]);
    let max: Tensor<3> = flat.max_dim(1).clamp_min(1e-6).reshape([batch * ch, 1, 1]);
    let weights = magnitude.div(max).clamp(0.0, 1.0);
    weights.mul(dist).mean()
}

/// The Laplacian pyramid of images: `levels` band-pass images (image minus its 5 × 5 Gaussian
/// blur, edges replicated), then the remaining low-pass image.
fn pyramid(x: Tensor<4>, levels: usize) -> Vec<Tensor<4>> {
    let mut out = Vec::with_capacity(levels + 1);
    let mut current = x;
    for _ in 0..levels {
        let blurred = gaussian_filter(replicate_pad(current.clone(), 2), 5, 1.0);
        out.push(current - blurred.clone());
        current = avg_pool2d(blurred, AvgPoolOptions::new([2, 2]));
    }
    out.push(current);
    out
}

/// Pads `[B, C, H, W]` by `p` on every side, repeating the edge pixels.
fn replicate_pad(x: Tensor<4>, p: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let edge =
        |x: &Tensor<4>, dim: usize, at: usize| x.clone().narrow(dim, at, 1).repeat_dim(dim, p);
    let rows = Tensor::cat(vec![edge(&x, 2, 0), x.clone(), edge(&x, 2, h - 1)], 2); // [B, C, H+2p, W]
    Tensor::cat(
        vec![edge(&rows, 3, 0), rows.clone(), edge(&rows, 3, w - 1)],
        3,
    ) // [B, C, H+2p, W+2p]
}

/// faceswap's Laplacian pyramid loss: five levels (each blurred with edges replicated, then
/// halved), L1 at each weighted by 2^(−2·level).
fn laplacian_pyramid(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [_, _, h, _] = pred.dims();
    let device = pred.device();
    // faceswap's five levels; fewer only when the image cannot be halved that often.
    let levels = (0..5).take_while(|l| h >> (l + 1) >= 1).count().max(1);
    let (pp, pt) = (pyramid(pred, levels), pyramid(target, levels));
    pp.into_iter()
        .zip(pt)
        .enumerate()
        .fold(Tensor::zeros([1], &device), |acc, (l, (a, b))| {
            acc + (a - b).abs().mean().mul_scalar(2f32.powi(-2 * l as i32))
        })
}

#[cfg(test)]
mod tests {
    //! Each loss against a plain f64 computation written here from the papers' and faceswap's
    //! definitions, on random images.
    use super::*;

    /// `[B, C, H, W]` values in [0, 1] from a seeded xorshift.
    fn random(shape: [usize; 4], seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..shape.iter().product::<usize>())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    fn tensor(v: &[f64], shape: [usize; 4]) -> Tensor<4> {
        let data: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        Tensor::from_data(TensorData::new(data, shape), &Device::flex())
    }

    fn value(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    /// One `h × w` plane of image `i`.
    type Plane = (Vec<f64>, usize, usize);

    fn planes(v: &[f64], [b, c, h, w]: [usize; 4]) -> Vec<Plane> {
        (0..b * c)
            .map(|i| (v[i * h * w..(i + 1) * h * w].to_vec(), h, w))
            .collect()
    }

    fn pool2((p, h, w): &Plane) -> Plane {
        let (h2, w2) = (h / 2, w / 2);
        let mut out = vec![0.0; h2 * w2];
        for y in 0..h2 {
            for x in 0..w2 {
                out[y * w2 + x] = (p[2 * y * w + 2 * x]
                    + p[2 * y * w + 2 * x + 1]
                    + p[(2 * y + 1) * w + 2 * x]
                    + p[(2 * y + 1) * w + 2 * x + 1])
                    / 4.0;
            }
        }
        (out, h2, w2)
    }

    /// VALID correlation with a `k × k` kernel.
    fn correlate((p, h, w): &Plane, kernel: &[f64], k: usize) -> Plane {
        let (oh, ow) = (h - k + 1, w - k + 1);
        let mut out = vec![0.0; oh * ow];
        for y in 0..oh {
            for x in 0..ow {
                let mut s = 0.0;
                for dy in 0..k {
                    for dx in 0..k {
                        s += p[(y + dy) * w + x + dx] * kernel[dy * k + dx];
                    }
                }
                out[y * ow + x] = s;
            }
        }
        (out, oh, ow)
    }

    fn gauss(k: usize, sigma: f64) -> Vec<f64> {
        let half = (k as f64 - 1.0) / 2.0;
        let w: Vec<f64> = (0..k * k)
            .map(|i| {
                let (dx, dy) = ((i % k) as f64 - half, (i / k) as f64 - half);
                (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let t: f64 = w.iter().sum();
        w.iter().map(|v| v / t).collect()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn close(ours: f64, theirs: f64, what: &str) {
        println!("{what}: burn {ours:.6}, plain {theirs:.6}");
        assert!(
            (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1.0),
            "{what}: {ours} vs {theirs}"
        );
    }

    #[test]
    fn mae_log_cosh_and_a_weighted_combination() {
        let shape = [2, 3, 16, 16];
        let (a, b) = (random(shape, 1), random(shape, 2));
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        let (ta, tb) = (tensor(&a, shape), tensor(&b, shape));
        close(
            value(ImageLoss::Mae.loss(ta.clone(), tb.clone())),
            mean(&d.iter().map(|x| x.abs()).collect::<Vec<_>>()),
            "MAE",
        );
        close(
            value(ImageLoss::LogCosh.loss(ta.clone(), tb.clone())),
            mean(&d.iter().map(|x| x.cosh().ln()).collect::<Vec<_>>()),
            "log-cosh",
        );
        let mae = mean(&d.iter().map(|x| x.abs()).collect::<Vec<_>>());
        let mse = mean(&d.iter().map(|x| x * x).collect::<Vec<_>>());
        close(
            value(combined_loss(
                ta,
                tb,
                &[(ImageLoss::Mae, 0.5), (ImageLoss::Mse, 2.0)],
            )),
            0.5 * mae + 2.0 * mse,
            "0.5·MAE + 2·MSE",
        );
    }

    #[test]
    fn gmsd_matches_the_paper() {
        let shape = [2, 3, 32, 32];
        let (a, b) = (random(shape, 3), random(shape, 4));
        let t = 1.0 / 3.0;
        let kx = [t, 0.0, -t, t, 0.0, -t, t, 0.0, -t];
        let ky = [t, t, t, 0.0, 0.0, 0.0, -t, -t, -t];
        let grad = |p: &Plane| {
            let p = pool2(p);
            let (gx, _, _) = correlate(&p, &kx, 3);
            let (gy, _, _) = correlate(&p, &ky, 3);
            gx.iter()
                .zip(&gy)
                .map(|(x, y)| (x * x + y * y).sqrt())
                .collect::<Vec<_>>()
        };
        let sds: Vec<f64> = planes(&a, shape)
            .iter()
            .zip(planes(&b, shape))
            .map(|(pa, pb)| {
                let (g1, g2) = (grad(pa), grad(&pb));
                let gms: Vec<f64> = g1
                    .iter()
                    .zip(&g2)
                    .map(|(x, y)| (2.0 * x * y + 0.0026) / (x * x + y * y + 0.0026))
                    .collect();
                let m = mean(&gms);
                mean(&gms.iter().map(|v| (v - m).powi(2)).collect::<Vec<_>>()).sqrt()
            })
            .collect();
        close(
            value(ImageLoss::Gmsd.loss(tensor(&a, shape), tensor(&b, shape))),
            mean(&sds),
            "GMSD",
        );
        assert!(value(ImageLoss::Gmsd.loss(tensor(&a, shape), tensor(&a, shape))) < 1e-3);
    }

    #[test]
    fn focal_frequency_matches_a_plain_dft() {
        let shape = [2, 3, 8, 8];
        let (a, b) = (random(shape, 5), random(shape, 6));
        let n = 8usize;
        let dft = |p: &Plane| {
            let mut out = vec![(0.0, 0.0); n * n];
            for u in 0..n {
                for v in 0..n {
                    let (mut re, mut im) = (0.0, 0.0);
                    for y in 0..n {
                        for x in 0..n {
                            let ang = -std::f64::consts::TAU * ((u * y + v * x) as f64) / n as f64;
                            re += p.0[y * n + x] * ang.cos();
                            im += p.0[y * n + x] * ang.sin();
                        }
                    }
                    out[u * n + v] = (re / n as f64, im / n as f64);
                }
            }
            out
        };
        let per: Vec<f64> = planes(&a, shape)
            .iter()
            .zip(planes(&b, shape))
            .flat_map(|(pa, pb)| {
                let (fa, fb) = (dft(pa), dft(&pb));
                let dist: Vec<f64> = fa
                    .iter()
                    .zip(&fb)
                    .map(|(x, y)| (x.0 - y.0).powi(2) + (x.1 - y.1).powi(2))
                    .collect();
                let max = dist.iter().map(|d| d.sqrt()).fold(0.0, f64::max).max(1e-6);
                dist.iter()
                    .map(move |d| (d.sqrt() / max).clamp(0.0, 1.0) * d)
                    .collect::<Vec<_>>()
            })
            .collect();
        close(
            value(ImageLoss::FocalFrequency.loss(tensor(&a, shape), tensor(&b, shape))),
            mean(&per),
            "focal frequency",
        );
    }

    #[test]
    fn laplacian_pyramid_matches_a_plain_pyramid() {
        let shape = [2, 3, 32, 32];
        let (a, b) = (random(shape, 7), random(shape, 8));
        let g = gauss(5, 1.0);
        let blur = |(p, h, w): &Plane| {
            // Replicate-pad by 2, then VALID 5 × 5.
            let (ph, pw) = (h + 4, w + 4);
            let padded: Vec<f64> = (0..ph * pw)
                .map(|i| {
                    let (y, x) = ((i / pw) as i64 - 2, (i % pw) as i64 - 2);
                    p[(y.clamp(0, *h as i64 - 1) as usize) * w + x.clamp(0, *w as i64 - 1) as usize]
                })
                .collect();
            correlate(&(padded, ph, pw), &g, 5)
        };
        let pyramid = |p: &Plane| {
            let mut out = Vec::new();
            let mut cur = p.clone();
            for _ in 0..5 {
                let bl = blur(&cur);
                out.push(
                    cur.0
                        .iter()
                        .zip(&bl.0)
                        .map(|(x, y)| x - y)
                        .collect::<Vec<_>>(),
                );
                cur = pool2(&bl);
            }
            out.push(cur.0);
            out
        };
        let (pa, pb) = (planes(&a, shape), planes(&b, shape));
        let mut total = 0.0;
        for level in 0..6 {
            let mut diffs = Vec::new();
            for (x, y) in pa.iter().zip(&pb) {
                let (lx, ly) = (pyramid(x), pyramid(y));
                diffs.extend(lx[level].iter().zip(&ly[level]).map(|(p, q)| (p - q).abs()));
            }
            total += mean(&diffs) * 2f64.powi(-2 * level as i32);
        }
        close(
            value(ImageLoss::LaplacianPyramid.loss(tensor(&a, shape), tensor(&b, shape))),
            total,
            "Laplacian pyramid",
        );
    }

    #[test]
    fn every_loss_trains_finite_gradients() {
        let shape = [2, 3, 64, 64];
        let device = Device::flex().autodiff();
        let a: Vec<f32> = random(shape, 11).iter().map(|x| *x as f32).collect();
        let b: Vec<f32> = random(shape, 12).iter().map(|x| *x as f32).collect();
        for loss in [
            ImageLoss::Dssim(5),
            ImageLoss::Mse,
            ImageLoss::Mae,
            ImageLoss::LogCosh,
            ImageLoss::MsSsim,
            ImageLoss::Gmsd,
            ImageLoss::FocalFrequency,
            ImageLoss::LaplacianPyramid,
        ] {
            let pred =
                Tensor::<4>::from_data(TensorData::new(a.clone(), shape), &device).require_grad();
            let target = Tensor::<4>::from_data(TensorData::new(b.clone(), shape), &device);
            let grads = loss.loss(pred.clone(), target).backward();
            let g = pred
                .grad(&grads)
                .and_then(|g| g.into_data().try_to_vec::<f32>().ok())
                .unwrap_or_default();
            assert_eq!(g.len(), a.len(), "{loss:?} has a gradient");
            assert!(g.iter().all(|v| v.is_finite()), "{loss:?}");
            assert!(g.iter().any(|v| *v != 0.0), "{loss:?}");
        }
    }

    #[test]
    fn ms_ssim_matches_a_plain_multiscale_ssim() {
        let shape = [1, 3, 64, 64];
        let a = random(shape, 9);
        // A related image: half the first plus half noise, so SSIM is well inside (0, 1).
        let noise = random(shape, 10);
        let b: Vec<f64> = a
            .iter()
            .zip(&noise)
            .map(|(x, n)| 0.6 * x + 0.4 * n)
            .collect();
        let k = ms_ssim_window(64);
        let g = gauss(k, 1.5);
        let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
        let mut per_plane = Vec::new();
        for (pa, pb) in planes(&a, shape).iter().zip(planes(&b, shape)) {
            let (mut x, mut y) = (pa.clone(), pb);
            let mut v = 1.0;
            for (scale, power) in MS_SSIM_POWERS.iter().enumerate() {
                let mul = |p: &Plane, q: &Plane| -> Plane {
                    (p.0.iter().zip(&q.0).map(|(s, t)| s * t).collect(), p.1, p.2)
                };
                let (mx, my) = (correlate(&x, &g, k), correlate(&y, &g, k));
                let (sxx, syy, sxy) = (
                    correlate(&mul(&x, &x), &g, k),
                    correlate(&mul(&y, &y), &g, k),
                    correlate(&mul(&x, &y), &g, k),
                );
                let n = mx.0.len();
                let (mut lum, mut cs) = (0.0, 0.0);
                for i in 0..n {
                    let (ux, uy) = (mx.0[i], my.0[i]);
                    let l = (2.0 * ux * uy + c1) / (ux * ux + uy * uy + c1);
                    let s = (2.0 * (sxy.0[i] - ux * uy) + c2)
                        / (sxx.0[i] - ux * ux + syy.0[i] - uy * uy + c2);
                    lum += l * s;
                    cs += s;
                }
                let last = scale == 4;
                let m = if last { lum / n as f64 } else { cs / n as f64 };
                v *= m.max(0.0).powf(*power as f64);
                x = pool2(&x);
                y = pool2(&y);
            }
            per_plane.push(1.0 - v);
        }
        close(
            value(ImageLoss::MsSsim.loss(tensor(&a, shape), tensor(&b, shape))),
            mean(&per_plane),
            "1 − MS-SSIM",
        );
        assert!(value(ImageLoss::MsSsim.loss(tensor(&a, shape), tensor(&a, shape))) < 1e-4);
    }
}
