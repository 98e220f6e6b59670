//! SSIM as DeepFaceLab computes it (core/leras/ops/__init__.py `dssim`): a Gaussian window over
//! the valid positions, the luminance and contrast-structure parts, and DFL's kernel size.

use burn::tensor::{Device, Tensor, TensorData};

/// DFL's structural dissimilarity `(1 − SSIM) / 2` per image and channel, averaged over the
/// valid (unpadded) window positions: Gaussian window of side `filter_size`, σ = 1.5, built as
/// a softmax of −d²/(2σ²) (so it sums to 1), k1 = 0.01, k2 = 0.03, `max_val` the pixel range.
/// Returns `[B, C]`.
pub fn dssim(a: Tensor<4>, b: Tensor<4>, max_val: f32, filter_size: usize) -> Tensor<2> {
    // [B, C, H, W] each
    let [batch, ch, _, _] = a.dims();
    let (luminance, cs) = ssim_parts(a, b, max_val, filter_size);
    let ssim: Tensor<2> = luminance
        .mul(cs)
        .flatten::<3>(2, 3)
        .mean_dim(2)
        .reshape([batch, ch]); // [B, C]
    ssim.neg().add_scalar(1.0).div_scalar(2.0)
}

/// SSIM's luminance and contrast-structure maps over the valid window positions
/// (`[B, C, H−k+1, W−k+1]` each): Gaussian window of side `filter_size`, σ = 1.5.
pub(crate) fn ssim_parts(
    a: Tensor<4>,
    b: Tensor<4>,
    max_val: f32,
    filter_size: usize,
) -> (Tensor<4>, Tensor<4>) {
    let [_, _, h, w] = a.dims();
    let filter = GaussianFilter::new(h, w, filter_size, 1.5, &a.device());
    let reduce = |x: Tensor<4>| filter.apply(x);
    let c1 = (0.01 * max_val).powi(2);
    let c2 = (0.03 * max_val).powi(2);
    let (mu_a, mu_b) = (reduce(a.clone()), reduce(b.clone())); // [B, C, H−k+1, W−k+1]
    let num0 = mu_a.clone().mul(mu_b.clone()).mul_scalar(2.0);
    let den0 = mu_a.powf_scalar(2.0) + mu_b.powf_scalar(2.0);
    let luminance = num0.clone().add_scalar(c1).div(den0.clone().add_scalar(c1));
    let num1 = reduce(a.clone().mul(b.clone())).mul_scalar(2.0);
    let den1 = reduce(a.powf_scalar(2.0) + b.powf_scalar(2.0));
    let cs = (num1 - num0)
        .add_scalar(c2)
        .div((den1 - den0).add_scalar(c2));
    (luminance, cs)
}

/// DFL's kernel size for a resolution: `int(res / 11.6)`, at least 3.
pub fn dssim_kernel(resolution: usize) -> usize {
    ((resolution as f64 / 11.6) as usize).max(3)
}

/// The normalised 1-D Gaussian of `size` taps; the 2-D window is its outer product (the 2-D
/// softmax of −d²/(2σ²) factors into two, and so does its sum).
fn gaussian_taps(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size as f32 - 1.0) / 2.0;
    let w: Vec<f32> = (0..size)
        .map(|i| (-(i as f32 - half).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// Band matrix `[n, n − k + 1]` whose column `j` holds `taps` at rows `j..j + k`: multiplying by
/// it filters along a dimension of length `n` over the valid positions.
fn band(n: usize, taps: &[f32], device: &Device) -> Tensor<2> {
    let k = taps.len();
    let m = n + 1 - k;
    let mut data = vec![0f32; n * m];
    for j in 0..m {
        for (t, &v) in taps.iter().enumerate() {
            data[(j + t) * m + j] = v;
        }
    }
    Tensor::from_data(TensorData::new(data, [n, m]), device)
}

/// Per-channel Gaussian filter over the valid window positions of `H`×`W` images, `[B, C, H, W]`
/// → `[B, C, H−k+1, W−k+1]`: the same as a depthwise convolution with the 2-D window, done as
/// two band-matrix products (rows, then columns). burn-flex runs a depthwise convolution as one
/// single-row GEMM per channel and tile; DSSIM forward + backward at `[8, 3, 128, 128]` took
/// 43 ms that way, 11 ms this way. Built once per image size, applied to several images.
pub(crate) struct GaussianFilter {
    /// `[W, W−k+1]`.
    rows: Tensor<2>,
    /// `[1, H−k+1, H]`.
    cols: Tensor<3>,
}

impl GaussianFilter {
    /// The filter of `size` taps and deviation `sigma` for `h`×`w` images.
    pub(crate) fn new(h: usize, w: usize, size: usize, sigma: f32, device: &Device) -> Self {
        let taps = gaussian_taps(size, sigma);
        GaussianFilter {
            rows: band(w, &taps, device),
            cols: band(h, &taps, device).transpose().unsqueeze(),
        }
    }

    /// Filters `[B, C, H, W]` images of the size it was built for.
    pub(crate) fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let [_, oh, _] = self.cols.dims();
        let [_, ow] = self.rows.dims();
        let rows = x
            .reshape([b * c * h, w])
            .matmul(self.rows.clone()) // [B·C·H, W']
            .reshape([b * c, h, ow]);
        self.cols.clone().matmul(rows).reshape([b, c, oh, ow]) // [B, C, H', W']
    }
}

/// [`GaussianFilter`] for one batch of images.
pub(crate) fn gaussian_filter(x: Tensor<4>, size: usize, sigma: f32) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    GaussianFilter::new(h, w, size, sigma, &x.device()).apply(x)
}
