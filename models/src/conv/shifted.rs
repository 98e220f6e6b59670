//! A stride-1 convolution as one GEMM per kernel tap over the zero-padded sample, for shapes
//! whose column matrix would be large.

use super::geometry::{Geometry, gemm_into};
use super::samples::{Scratch, zeroed};

/// A stride-1 convolution as kh·kw GEMMs, one per kernel tap, each reading the zero-padded
/// sample `[Ci, Hp·Wp]` shifted by the tap: no column matrix (kh·kw times the sample) is built.
/// Outputs live on the padded width ("wide" rows of `Wp`, the last `Wp − Wo` columns unused).
#[derive(Debug, Clone, Copy)]
pub(super) struct Shifted {
    pub(super) g: Geometry,
    pub(super) wp: usize,
    /// Floats per padded channel: `Hp·Wp` plus the widest tap shift, so no tap's view of one
    /// channel runs into the next.
    pub(super) stride: usize,
}

impl Shifted {
    pub(super) fn new(g: Geometry) -> Option<Shifted> {
        if g.sh != 1 || g.sw != 1 || g.is_pointwise() {
            return None;
        }
        let (hp, wp) = (g.ho + g.dh * (g.kh - 1), g.wo + g.dw * (g.kw - 1));
        (hp >= g.h + g.pt && wp >= g.w + g.pl).then_some(Shifted {
            g,
            wp,
            stride: hp * wp + g.dw * (g.kw - 1),
        })
    }

    /// Output positions on the padded width: `Ho·Wp`.
    pub(super) fn wide(&self) -> usize {
        self.g.ho * self.wp
    }

    /// Where tap `t` (kernel row `t / kw`, column `t % kw`) starts reading a padded channel.
    pub(super) fn offset(&self, t: usize) -> usize {
        (t / self.g.kw) * self.g.dh * self.wp + (t % self.g.kw) * self.g.dw
    }

    pub(super) fn taps(&self) -> usize {
        self.g.kh * self.g.kw
    }

    /// Where input row `y` starts in a padded channel.
    pub(super) fn padded_row(&self, y: usize) -> usize {
        (y + self.g.pt) * self.wp + self.g.pl
    }

    /// One sample `[Ci, H, W]` zero-padded into `buf` `[Ci, stride]`.
    pub(super) fn pad<'a>(&self, xb: &[f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
        let g = &self.g;
        let padded = zeroed(buf, g.ci * self.stride);
        for (plane, dst) in xb
            .chunks_exact(g.h * g.w)
            .zip(padded.chunks_exact_mut(self.stride))
        {
            for (y, row) in plane.chunks_exact(g.w).enumerate() {
                let at = self.padded_row(y);
                dst[at..at + g.w].copy_from_slice(row);
            }
        }
        padded
    }

    /// An output gradient `[Co, Ho, Wo]` on the padded width `[Co, Ho·Wp]`, zero in the unused
    /// columns (they would otherwise add into other pixels).
    pub(super) fn widen<'a>(&self, gb: &[f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
        let g = &self.g;
        let wide = zeroed(buf, g.co * self.wide());
        for (src, dst) in gb.chunks_exact(g.wo).zip(wide.chunks_exact_mut(self.wp)) {
            dst[..g.wo].copy_from_slice(src);
        }
        wide
    }

    pub(super) fn forward(
        &self,
        xb: &[f32],
        ws: &[f32],
        yb: &mut [f32],
        s: &mut Scratch,
        par: gemm::Parallelism,
    ) {
        let g = &self.g;
        let (kk, n) = (self.taps(), self.wide());
        let xp = self.pad(xb, &mut s.input);
        let yw = zeroed(&mut s.output, g.co * n);
        for t in 0..kk {
            // yw[Co, n] (+)= W[:, :, t] [Co, Ci] · xp shifted by the tap [Ci, n]
            // SAFETY: yw is co×n row-major; the weight view (row stride ci·kk, column stride
            // kk, from tap t) stays inside ws; the input view reads offset + n ≤ stride
            // floats of each of the ci channels of xp.
            unsafe {
                gemm_into(
                    (g.co, n, g.ci),
                    (yw.as_mut_ptr(), 1, n as isize),
                    (ws.as_ptr().add(t), kk as isize, (g.ci * kk) as isize),
                    (xp.as_ptr().add(self.offset(t)), 1, self.stride as isize),
                    t > 0,
                    par,
                );
            }
        }
        for (dst, src) in yb.chunks_exact_mut(g.wo).zip(yw.chunks_exact(self.wp)) {
            dst.copy_from_slice(&src[..g.wo]);
        }
    }

    pub(super) fn input_grad(
        &self,
        gb: &[f32],
        ws: &[f32],
        dxb: &mut [f32],
        s: &mut Scratch,
        par: gemm::Parallelism,
    ) {
        let g = &self.g;
        let (kk, n) = (self.taps(), self.wide());
        let dyw = self.widen(gb, &mut s.output);
        let dxp = zeroed(&mut s.input, g.ci * self.stride);
        for t in 0..kk {
            // dxp shifted by the tap [Ci, n] += W[:, :, t]ᵀ [Ci, Co] · dyw [Co, n]
            // SAFETY: each of the ci destination rows spans offset + n ≤ stride floats of its
            // own padded channel (rows never overlap); the weight view (row stride kk, column
            // stride ci·kk, from tap t) stays inside ws; dyw is co×n row-major.
            unsafe {
                gemm_into(
                    (g.ci, n, g.co),
                    (
                        dxp.as_mut_ptr().add(self.offset(t)),
                        1,
                        self.stride as isize,
                    ),
                    (ws.as_ptr().add(t), (g.ci * kk) as isize, kk as isize),
                    (dyw.as_ptr(), 1, n as isize),
                    true,
                    par,
                );
            }
        }
        for (plane, padded) in dxb
            .chunks_exact_mut(g.h * g.w)
            .zip(dxp.chunks_exact(self.stride))
        {
            for (y, row) in plane.chunks_exact_mut(g.w).enumerate() {
                let at = self.padded_row(y);
                row.copy_from_slice(&padded[at..at + g.w]);
            }
        }
    }

    /// Adds one sample's `dW` into `dw` `[Co, Ci, kh, kw]` (overwrites it when `!accumulate`).
    pub(super) fn weight_grad(
        &self,
        xb: &[f32],
        gb: &[f32],
        dw: &mut [f32],
        accumulate: bool,
        s: &mut Scratch,
        par: gemm::Parallelism,
    ) {
        let g = &self.g;
        let (kk, n) = (self.taps(), self.wide());
        let xp = self.pad(xb, &mut s.input);
        let dyw = self.widen(gb, &mut s.output);
        for t in 0..kk {
            // dW[:, :, t] [Co, Ci] (+)= dyw [Co, n] · (xp shifted by the tap)ᵀ [n, Ci]
            // SAFETY: the dW view (row stride ci·kk, column stride kk, from tap t) stays
            // inside dw; dyw is co×n row-major; the input view reads offset + n ≤ stride
            // floats of each of the ci channels of xp.
            unsafe {
                gemm_into(
                    (g.co, g.ci, n),
                    (dw.as_mut_ptr().add(t), kk as isize, (g.ci * kk) as isize),
                    (dyw.as_ptr(), 1, n as isize),
                    (xp.as_ptr().add(self.offset(t)), self.stride as isize, 1),
                    accumulate,
                    par,
                );
            }
        }
    }

    /// Floats of scratch one sample needs.
    pub(super) fn scratch_floats(&self) -> usize {
        self.g.ci * self.stride + self.g.co.max(1) * self.wide()
    }
}
