//! One convolution's sizes, strides and padding, its column matrix (im2col / col2im), and the
//! GEMM call every formulation shares.

use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

/// Sizes, strides and padding of one 2-D convolution (groups 1), in elements.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) ci: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) co: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) sh: usize,
    pub(super) sw: usize,
    pub(super) dh: usize,
    pub(super) dw: usize,
    pub(super) pt: usize,
    pub(super) pl: usize,
}

impl Geometry {
    pub(super) fn new(x: &[usize], weight: &[usize], options: &ConvOptions<2>) -> Geometry {
        let out = |n: usize, k: usize, s: usize, d: usize, (b, e): (usize, usize)| {
            (n + b + e).saturating_sub(d * (k - 1) + 1) / s + 1
        };
        let [sh, sw] = options.stride;
        let [dh, dw] = options.dilation;
        Geometry {
            batch: x[0],
            ci: x[1],
            h: x[2],
            w: x[3],
            co: weight[0],
            kh: weight[2],
            kw: weight[3],
            ho: out(x[2], weight[2], sh, dh, options.padding[0]),
            wo: out(x[3], weight[3], sw, dw, options.padding[1]),
            sh,
            sw,
            dh,
            dw,
            pt: options.padding[0].0,
            pl: options.padding[1].0,
        }
    }

    /// Rows of a sample's column matrix: `Ci·kh·kw`.
    pub(super) fn q(&self) -> usize {
        self.ci * self.kh * self.kw
    }

    /// Output positions per sample: `Ho·Wo`.
    pub(super) fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// Whether the column matrix of a sample is the sample itself (1×1, stride 1, no padding).
    pub(super) fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.ho == self.h
            && self.wo == self.w
    }

    /// Output columns `ox` whose input column `ox·sw + j·dw − pl` lies inside the image.
    pub(super) fn valid_ox(&self, j: usize) -> std::ops::Range<usize> {
        let shift = j * self.dw;
        let first = self.pl.saturating_sub(shift).div_ceil(self.sw);
        let last = (self.w + self.pl)
            .saturating_sub(shift)
            .div_ceil(self.sw)
            .min(self.wo);
        first.min(last)..last
    }

    /// The input row read by output row `oy` at kernel row `i`, if inside the image.
    pub(super) fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh)
            .checked_sub(self.pt)
            .filter(|&y| y < self.h)
    }

    /// `col[(c, i, j), (oy, ox)] = x[c, oy·sh + i·dh − pt, ox·sw + j·dw − pl]`, 0 outside:
    /// one sample `[Ci, H, W]` into its column matrix `[Ci·kh·kw, Ho·Wo]`.
    pub(super) fn im2col(&self, xb: &[f32], col: &mut [f32]) {
        let (l, hw) = (self.l(), self.h * self.w);
        col.par_chunks_mut(l).enumerate().for_each(|(row, out)| {
            let (c, i, j) = (
                row / (self.kh * self.kw),
                row / self.kw % self.kh,
                row % self.kw,
            );
            let plane = &xb[c * hw..(c + 1) * hw];
            let cols = self.valid_ox(j);
            for (oy, dst) in out.chunks_exact_mut(self.wo).enumerate() {
                let Some(y) = self.input_row(oy, i).filter(|_| !cols.is_empty()) else {
                    dst.fill(0.0);
                    continue;
                };
                dst[..cols.start].fill(0.0);
                dst[cols.end..].fill(0.0);
                let x0 = cols.start * self.sw + j * self.dw - self.pl;
                let src = &plane[y * self.w..(y + 1) * self.w];
                if self.sw == 1 {
                    dst[cols.clone()].copy_from_slice(&src[x0..x0 + cols.len()]);
                } else {
                    for (d, s) in dst[cols.clone()]
                        .iter_mut()
                        .zip(src[x0..].iter().step_by(self.sw))
                    {
                        *d = *s;
                    }
                }
            }
        });
    }

    /// The adjoint of [`Geometry::im2col`]: adds a column matrix `[Ci·kh·kw, Ho·Wo]` into one
    /// sample's input gradient `[Ci, H, W]`, one channel per task (no two write one pixel).
    pub(super) fn col2im(&self, col: &[f32], dxb: &mut [f32]) {
        let (l, kk) = (self.l(), self.kh * self.kw);
        dxb.par_chunks_mut(self.h * self.w)
            .enumerate()
            .for_each(|(c, plane)| {
                for (r, rows) in col[c * kk * l..(c + 1) * kk * l]
                    .chunks_exact(l)
                    .enumerate()
                {
                    let (i, j) = (r / self.kw, r % self.kw);
                    let cols = self.valid_ox(j);
                    if cols.is_empty() {
                        continue;
                    }
                    let x0 = cols.start * self.sw + j * self.dw - self.pl;
                    for (oy, src) in rows.chunks_exact(self.wo).enumerate() {
                        let Some(y) = self.input_row(oy, i) else {
                            continue;
                        };
                        let dst = &mut plane[y * self.w..(y + 1) * self.w];
                        for (d, s) in dst[x0..]
                            .iter_mut()
                            .step_by(self.sw)
                            .zip(&src[cols.clone()])
                        {
                            *d += *s;
                        }
                    }
                }
            });
    }
}

/// `dst[m, n] = (dst if accumulate) + Σ_k lhs[m, k]·rhs[k, n]` over strided views; each view
/// is (pointer, column stride, row stride).
///
/// # Safety
/// Every view must describe memory that is live and in bounds for its shape, and `dst` must
/// not overlap the other two.
pub(super) unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.1,
            dst.2,
            accumulate,
            lhs.0,
            lhs.1,
            lhs.2,
            rhs.0,
            rhs.1,
            rhs.2,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
