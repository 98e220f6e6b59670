//! DeepFaceLab's training losses (core/leras/ops/__init__.py `dssim`; models/Model_SAEHD loss).

use burn::tensor::Tensor;

use crate::batch::SideBatch;
use crate::ssim::{dssim, dssim_kernel};

/// SAEHD's image term for one side: `10·DSSIM(k)` below 256 px, `5·DSSIM(k) + 5·DSSIM(k/2)`
/// from 256 px, plus `10·MSE`; mean over the batch. Inputs in [0, 1], `[B, C, H, W]`.
pub fn saehd_image_loss(pred: Tensor<4>, target: Tensor<4>, resolution: usize) -> Tensor<1> {
    let k = dssim_kernel(resolution);
    let structural = if resolution < 256 {
        dssim(pred.clone(), target.clone(), 1.0, k)
            .mean()
            .mul_scalar(10.0)
    } else {
        let k2 = ((resolution as f64 / 23.2) as usize).max(3);
        dssim(pred.clone(), target.clone(), 1.0, k)
            .mean()
            .mul_scalar(5.0)
            + dssim(pred.clone(), target.clone(), 1.0, k2)
                .mean()
                .mul_scalar(5.0)
    };
    let mse = (pred - target).powf_scalar(2.0).mean().mul_scalar(10.0);
    structural + mse
}

/// What one side's training loss includes (DFL SAEHD options).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SideLossOptions {
    /// Image terms only inside the (blurred) face mask.
    pub masked: bool,
    /// Eyes-and-mouth priority: `300·mean|Δ·em_mask|`.
    pub eyes_mouth: bool,
    /// Train the learned mask: `10·MSE(mask)`.
    pub learn_mask: bool,
    /// faceswap-style image losses with their weights, replacing DFL's DSSIM + MSE term when
    /// any is set (up to four, as faceswap allows).
    pub image_losses: [Option<(crate::faceswap_losses::ImageLoss, f32)>; 4],
}

/// One side's SAEHD loss per DFL (models/Model_SAEHD/Model.py): the image term on
/// `pred·m` vs `target·m` where `m` is `loss_mask` (already blurred and clipped by the data
/// pipeline) when masked, else on the raw images; plus EMP and the learned-mask MSE against
/// the unblurred `mask`. Images `[B, 3, R, R]`, masks `[B, 1, R, R]`; returns `[1]`.
pub fn saehd_side_loss(
    pred: Tensor<4>,
    pred_mask: Tensor<4>,
    side: &SideBatch,
    resolution: usize,
    opts: SideLossOptions,
) -> Tensor<1> {
    let target = side.target.clone();
    let (mask, em_mask) = (side.mask.clone(), side.em_mask.clone());
    let (p, t) = if opts.masked {
        let m = side.loss_mask.clone();
        (pred.clone().mul(m.clone()), target.clone().mul(m))
    } else {
        (pred.clone(), target.clone())
    };
    let chosen: Vec<(crate::faceswap_losses::ImageLoss, f32)> =
        opts.image_losses.iter().flatten().copied().collect();
    let mut loss = if chosen.is_empty() {
        saehd_image_loss(p, t, resolution)
    } else {
        crate::faceswap_losses::combined_loss(p, t, &chosen)
    };
    if opts.eyes_mouth {
        // [B, 3, R, R] · [B, 1, R, R] broadcasts over channels.
        loss = loss
            + (target.mul(em_mask.clone()) - pred.mul(em_mask))
                .abs()
                .mean()
                .mul_scalar(300.0);
    }
    if opts.learn_mask {
        loss = loss + (mask - pred_mask).powf_scalar(2.0).mean().mul_scalar(10.0);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[allow(unused_imports)]
    use crate::ssim::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    /// The 2-D window as a depthwise kernel `[C, 1, k, k]`.
    fn gaussian_window(size: usize, sigma: f32, channels: usize, device: &Device) -> Tensor<4> {
        let half = (size as f32 - 1.0) / 2.0;
        let mut w = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 - half, y as f32 - half);
                w.push((-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp());
            }
        }
        let total: f32 = w.iter().sum();
        let mut data = Vec::with_capacity(channels * size * size);
        for _ in 0..channels {
            data.extend(w.iter().map(|v| v / total));
        }
        Tensor::from_data(TensorData::new(data, [channels, 1, size, size]), device)
    }

    #[test]
    fn separable_filter_equals_the_depthwise_convolution() {
        let device = Device::default();
        for (shape, k, sigma) in [([2, 3, 40, 33], 11, 1.5), ([1, 2, 9, 12], 5, 1.0)] {
            let n: usize = shape.iter().product();
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    (0..n)
                        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
                        .collect(),
                    shape,
                ),
                &device,
            );
            let conv = conv2d(
                x.clone(),
                gaussian_window(k, sigma, shape[1], &device),
                None,
                ConvOptions::new([1, 1], [0, 0], [1, 1], shape[1]),
            );
            let sep = gaussian_filter(x, k, sigma);
            assert_eq!(sep.dims(), conv.dims());
            let diff: f32 = (sep - conv).abs().max().into_scalar();
            assert!(diff < 1e-5, "{shape:?} k {k}: {diff}");
        }
    }

    /// Plain SSIM written independently: explicit double loops in f64.
    fn ssim_reference(a: &[f64], b: &[f64], h: usize, w: usize, k: usize) -> f64 {
        let half = (k as f64 - 1.0) / 2.0;
        let mut g = vec![0.0; k * k];
        for y in 0..k {
            for x in 0..k {
                g[y * k + x] = (-((x as f64 - half).powi(2) + (y as f64 - half).powi(2))
                    / (2.0 * 1.5 * 1.5))
                    .exp();
            }
        }
        let s: f64 = g.iter().sum();
        g.iter_mut().for_each(|v| *v /= s);
        let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
        let mut total = 0.0;
        let (oh, ow) = (h - k + 1, w - k + 1);
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for y in 0..k {
                    for x in 0..k {
                        let wgt = g[y * k + x];
                        let (pa, pb) = (a[(oy + y) * w + ox + x], b[(oy + y) * w + ox + x]);
                        ma += wgt * pa;
                        mb += wgt * pb;
                        saa += wgt * pa * pa;
                        sbb += wgt * pb * pb;
                        sab += wgt * pa * pb;
                    }
                }
                let (va, vb, cov) = (saa - ma * ma, sbb - mb * mb, sab - ma * mb);
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            }
        }
        total / (oh * ow) as f64
    }

    #[test]
    fn dssim_matches_a_plain_ssim() {
        let device = Device::flex();
        let (h, w, k) = (24usize, 20usize, 7usize);
        let mut state = 12345u64;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f64 / (1u64 << 24) as f64
        };
        let a: Vec<f64> = (0..2 * h * w).map(|_| rnd()).collect();
        // b: a blurred, shifted and noisy copy of a, so SSIM is neither 0 nor 1.
        let b: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, v)| (0.6 * v + 0.3 * a[(i + 1) % a.len()] + 0.1 * rnd()).min(1.0))
            .collect();
        let ta = Tensor::<4>::from_data(
            TensorData::new(
                a.iter().map(|v| *v as f32).collect::<Vec<_>>(),
                [1, 2, h, w],
            ),
            &device,
        );
        let tb = Tensor::<4>::from_data(
            TensorData::new(
                b.iter().map(|v| *v as f32).collect::<Vec<_>>(),
                [1, 2, h, w],
            ),
            &device,
        );
        let got: Vec<f32> = dssim(ta, tb, 1.0, k).to_data().try_to_vec::<f32>().unwrap();
        for c in 0..2 {
            let s = ssim_reference(
                &a[c * h * w..(c + 1) * h * w],
                &b[c * h * w..(c + 1) * h * w],
                h,
                w,
                k,
            );
            let want = (1.0 - s) / 2.0;
            assert!(
                (got[c] as f64 - want).abs() < 1e-4,
                "channel {c}: {} vs {want}",
                got[c]
            );
        }
        assert_eq!(dssim_kernel(128), 11);
        assert_eq!(dssim_kernel(256), 22);
    }

    #[test]
    fn identical_images_have_zero_loss() {
        let device = Device::flex();
        let x = Tensor::<4>::ones([2, 3, 32, 32], &device).mul_scalar(0.4);
        let l: f32 = saehd_image_loss(x.clone(), x, 32).into_scalar();
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn side_loss_terms_add_up_as_dfl_writes_them() {
        let device = Device::flex();
        let r = 16;
        let pred = Tensor::<4>::ones([1, 3, r, r], &device).mul_scalar(0.25);
        let target = Tensor::<4>::ones([1, 3, r, r], &device).mul_scalar(0.75);
        let pm = Tensor::<4>::ones([1, 1, r, r], &device).mul_scalar(0.5);
        let zero = Tensor::<4>::zeros([1, 1, r, r], &device);
        let one = Tensor::<4>::ones([1, 1, r, r], &device);
        let run = |loss_mask: Tensor<4>, em_mask: Tensor<4>, o: SideLossOptions| -> f32 {
            let side = SideBatch {
                warped: target.clone(),
                target: target.clone(),
                mask: one.clone(),
                loss_mask,
                em_mask,
            };
            saehd_side_loss(pred.clone(), pm.clone(), &side, r, o).into_scalar()
        };
        let plain = SideLossOptions {
            masked: false,
            eyes_mouth: false,
            learn_mask: false,
            image_losses: [None; 4],
        };
        // Flat images: SSIM's structure term is 1, luminance (2·.25·.75+c1)/(.25²+.75²+c1).
        let c1 = 1e-4f64;
        let lum = (2.0 * 0.25 * 0.75 + c1) / (0.0625 + 0.5625 + c1);
        let image = 10.0 * (1.0 - lum) / 2.0 + 10.0 * 0.25;
        let got = run(one.clone(), zero.clone(), plain) as f64;
        assert!((got - image).abs() < 1e-3, "{got} vs {image}");
        // An all-zero loss mask removes the image term entirely.
        let masked = SideLossOptions {
            masked: true,
            ..plain
        };
        assert!(run(zero.clone(), zero.clone(), masked).abs() < 1e-6);
        // EMP on the whole face adds 300·|0.75−0.25|; the mask term adds 10·0.5².
        let all = SideLossOptions {
            masked: true,
            eyes_mouth: true,
            learn_mask: true,
            image_losses: [None; 4],
        };
        let want = 300.0 * 0.5 + 10.0 * 0.25;
        assert!((run(zero.clone(), one.clone(), all) as f64 - want).abs() < 1e-3);
        // faceswap losses replace the image term: 2·MAE = 2·0.5 on flat 0.25 vs 0.75.
        let mae = SideLossOptions {
            image_losses: [
                Some((crate::faceswap_losses::ImageLoss::Mae, 2.0)),
                None,
                None,
                None,
            ],
            ..plain
        };
        assert!((run(one.clone(), zero.clone(), mae) as f64 - 1.0).abs() < 1e-4);
    }
}
