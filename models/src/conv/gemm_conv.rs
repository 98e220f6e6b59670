//! The convolution as per-sample GEMMs (column matrix, shifted taps or Winograd) and its
//! backward: the input gradient through col2im, the weight gradient summed over samples.

use burn::tensor::ops::ConvOptions;
use burn_backend::TensorMetadata;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::NodeId;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops};
use burn_dispatch::backends::flex::FlexTensor;
use rayon::prelude::*;

use super::geometry::{Geometry, gemm_into};
use super::samples::{Scratch, columns, for_each_sample, parallelism};
use super::shifted::Shifted;
use super::{contiguous_f32, flex_f32, scratch, winograd};

/// Which GEMM formulation a convolution uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the forced paths are compared with each other in tests"
    )
)]
pub(super) enum Path {
    /// Per tap when the column matrix would be large, else columns.
    Auto,
    /// One GEMM over the column matrix (any stride).
    Columns,
    /// One GEMM per kernel tap (stride 1 only; falls back to columns otherwise).
    Shifted,
    /// Winograd F(4×4, 3×3) for the forward and input gradient (3×3 stride 1 only; else Auto).
    Winograd,
}

/// Column matrices from this many floats per sample on go per tap instead: conv_layers bench,
/// 2 cores: SAEHD's 3×3 layer at 128 px (1152 × 16384 floats) 743 → 471 ms; at 32 px
/// (4608 × 1024) the column GEMM stayed 15–20 % faster, the deeper GEMM outweighing the copy.
pub(super) const SHIFTED_MIN_COLUMNS: usize = 8 << 20;

/// The per-tap plan for `g` on `path`, or `None` for the column matrix.
pub(super) fn plan(g: Geometry, path: Path) -> Option<Shifted> {
    match path {
        Path::Columns => None,
        Path::Shifted => Shifted::new(g),
        Path::Auto | Path::Winograd => {
            Shifted::new(g).filter(|_| g.q() * g.l() >= SHIFTED_MIN_COLUMNS)
        }
    }
}

/// Channels from which Auto takes Winograd for a 3×3 stride-1 convolution.
pub(super) const WINOGRAD_MIN_CHANNELS: usize = 8;

/// The Winograd correlation for `g`'s forward on `path`, or `None` when it does not apply.
pub(super) fn winograd_forward(g: &Geometry, path: Path) -> Option<winograd::Correlation> {
    winograd_applies(g, path).then_some(winograd::Correlation {
        batch: g.batch,
        cin: g.ci,
        h: g.h,
        w: g.w,
        cout: g.co,
        ho: g.ho,
        wo: g.wo,
        pt: g.pt,
        pl: g.pl,
    })
}

/// The Winograd correlation for `g`'s input gradient: `dY` with the kernel turned 180°, the
/// padding mirrored (`2 − p`).
pub(super) fn winograd_input_grad(g: &Geometry, path: Path) -> Option<winograd::Correlation> {
    // Lazily: `2 − p` underflows where Winograd does not apply.
    winograd_applies(g, path).then(|| winograd::Correlation {
        batch: g.batch,
        cin: g.co,
        h: g.ho,
        w: g.wo,
        cout: g.ci,
        ho: g.h,
        wo: g.w,
        pt: 2 - g.pt,
        pl: 2 - g.pl,
    })
}

pub(super) fn winograd_applies(g: &Geometry, path: Path) -> bool {
    let fits = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1)
        && g.pt <= 2
        && g.pl <= 2
        && g.ho > 0
        && g.wo > 0;
    match path {
        Path::Winograd => fits,
        Path::Auto => fits && g.ci.min(g.co) >= WINOGRAD_MIN_CHANNELS,
        Path::Columns | Path::Shifted => false,
    }
}

/// Floats of scratch one sample of `g` needs on its path.
pub(super) fn scratch_floats(g: &Geometry, shifted: &Option<Shifted>) -> usize {
    match shifted {
        Some(sh) => sh.scratch_floats(),
        None => g.q() * g.l(),
    }
}

/// A convolution's output `[B, Co, Ho, Wo]`: per sample, `Y_b[Co, L] = W[Co, Q] · col(x_b)[Q, L]`
/// (stride 1: one GEMM per kernel tap instead, see [`Shifted`]).
pub(super) fn conv_forward(
    x: FlexTensor,
    weight: FlexTensor,
    options: &ConvOptions<2>,
    path: Path,
) -> FlexTensor {
    let ((xd, x), (wd, weight)) = (contiguous_f32(x), contiguous_f32(weight));
    let g = Geometry::new(&xd, &wd, options);
    let (q, l) = (g.q(), g.l());
    let (xs, ws) = (x.storage::<f32>(), weight.storage::<f32>());
    let mut y = vec![0f32; g.batch * g.co * l];
    if let Some(c) = winograd_forward(&g, path) {
        let u = winograd::kernel_forward(ws, g.co, g.ci);
        c.run(xs, &u, &mut y);
        scratch::give(u);
        return flex_f32(y, vec![g.batch, g.co, g.ho, g.wo]);
    }
    let shifted = plan(g, path);
    let (across, par) = parallelism(g.batch, scratch_floats(&g, &shifted));
    let samples: Vec<_> = xs
        .chunks_exact(g.ci * g.h * g.w)
        .zip(y.chunks_exact_mut(g.co * l))
        .collect();
    for_each_sample(samples, across, |(xb, yb), scratch| {
        if let Some(sh) = &shifted {
            return sh.forward(xb, ws, yb, scratch, par);
        }
        let col = columns(&g, xb, &mut scratch.input);
        // SAFETY: yb is co×l, ws co×q and col q×l, all row-major and live here.
        unsafe {
            gemm_into(
                (g.co, l, q),
                (yb.as_mut_ptr(), 1, l as isize),
                (ws.as_ptr(), 1, q as isize),
                (col.as_ptr(), 1, l as isize),
                false,
                par,
            );
        }
    });
    flex_f32(y, vec![g.batch, g.co, g.ho, g.wo])
}

/// `dL/dx` `[B, Ci, H, W]`: per sample, `col2im(Wᵀ[Q, Co] · dY_b[Co, L])` (stride 1: per tap).
pub(super) fn input_grad(
    x_dims: &[usize],
    weight: FlexTensor,
    grad: FlexTensor,
    options: &ConvOptions<2>,
    path: Path,
) -> FlexTensor {
    let ((wd, weight), (_, grad)) = (contiguous_f32(weight), contiguous_f32(grad));
    let g = Geometry::new(x_dims, &wd, options);
    let (q, l) = (g.q(), g.l());
    let (ws, gs) = (weight.storage::<f32>(), grad.storage::<f32>());
    let mut dx = vec![0f32; g.batch * g.ci * g.h * g.w];
    if let Some(c) = winograd_input_grad(&g, path) {
        let u = winograd::kernel_input_grad(ws, g.co, g.ci);
        c.run(gs, &u, &mut dx);
        scratch::give(u);
        return flex_f32(dx, x_dims.to_vec());
    }
    let shifted = plan(g, path);
    let (across, par) = parallelism(g.batch, scratch_floats(&g, &shifted));
    let samples: Vec<_> = gs
        .chunks_exact(g.co * l)
        .zip(dx.chunks_exact_mut(g.ci * g.h * g.w))
        .collect();
    for_each_sample(samples, across, |(gb, dxb), scratch| {
        if let Some(sh) = &shifted {
            return sh.input_grad(gb, ws, dxb, scratch, par);
        }
        let out = if g.is_pointwise() {
            dxb.as_mut_ptr()
        } else {
            scratch.output.resize(q * l, 0.0);
            scratch.output.as_mut_ptr()
        };
        // SAFETY: out is q×l row-major (dx_b itself when pointwise, q = Ci, l = H·W), ws is
        // co×q row-major read as its transpose, gb co×l row-major; all live here.
        unsafe {
            gemm_into(
                (q, l, g.co),
                (out, 1, l as isize),
                (ws.as_ptr(), q as isize, 1),
                (gb.as_ptr(), 1, l as isize),
                false,
                par,
            );
        }
        if !g.is_pointwise() {
            g.col2im(&scratch.output, dxb);
        }
    });
    flex_f32(dx, x_dims.to_vec())
}

/// Samples summed per partial weight gradient at most: the partials' count, and so the
/// summation order, depends on the batch only (never on the core count), keeping runs exact.
pub(super) const SAMPLES_PER_PARTIAL: usize = 2;

/// `dL/dW` `[Co, Ci, kh, kw]`: `Σ_b dY_b[Co, L] · col(x_b)ᵀ[L, Q]` (stride 1: per tap), as
/// partial sums over fixed runs of samples added in order.
pub(super) fn weight_grad(
    x: &FlexTensor,
    grad: &FlexTensor,
    w_dims: &[usize],
    options: &ConvOptions<2>,
    path: Path,
) -> FlexTensor {
    let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
    let g = Geometry::new(&x.shape(), w_dims, options);
    let (q, l) = (g.q(), g.l());
    let (xs, gs) = (x.storage::<f32>(), grad.storage::<f32>());
    if let Some(c) = winograd_forward(&g, path) {
        return flex_f32(c.kernel_grad(xs, gs), w_dims.to_vec());
    }
    let shifted = plan(g, path);
    let (across, par) = parallelism(
        g.batch.div_ceil(SAMPLES_PER_PARTIAL),
        scratch_floats(&g, &shifted),
    );
    let runs: Vec<_> = xs
        .chunks(SAMPLES_PER_PARTIAL * g.ci * g.h * g.w)
        .zip(gs.chunks(SAMPLES_PER_PARTIAL * g.co * l))
        .collect();
    let partial = |(xr, gr): (&[f32], &[f32]), scratch: &mut Scratch| {
        let mut dw = vec![0f32; g.co * q];
        for (s, (xb, gb)) in xr
            .chunks_exact(g.ci * g.h * g.w)
            .zip(gr.chunks_exact(g.co * l))
            .enumerate()
        {
            if let Some(sh) = &shifted {
                sh.weight_grad(xb, gb, &mut dw, s > 0, scratch, par);
                continue;
            }
            let col = columns(&g, xb, &mut scratch.input);
            // SAFETY: dw is co×q row-major, gb co×l row-major, col q×l row-major read as its
            // transpose; all live here.
            unsafe {
                gemm_into(
                    (g.co, q, l),
                    (dw.as_mut_ptr(), 1, q as isize),
                    (gb.as_ptr(), 1, l as isize),
                    (col.as_ptr(), l as isize, 1),
                    s > 0,
                    par,
                );
            }
        }
        dw
    };
    let partials: Vec<Vec<f32>> = if across {
        runs.into_par_iter()
            .map_init(Scratch::default, |scratch, run| partial(run, scratch))
            .collect()
    } else {
        let mut scratch = Scratch::default();
        runs.into_iter()
            .map(|run| partial(run, &mut scratch))
            .collect()
    };
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![0f32; g.co * q]);
    for p in partials {
        dw.iter_mut().zip(&p).for_each(|(d, v)| *d += v);
    }
    flex_f32(dw, w_dims.to_vec())
}

/// The convolution's backward: both gradients by GEMM.
#[derive(Debug)]
pub(super) struct GemmConv;

impl Backward<Flex, 2> for GemmConv {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let w = checkpointer.retrieve_node_output::<FlexTensor>(w_state);
        if let Some(node) = node_w {
            let dw = weight_grad(&x, &grad, &w.shape(), &options, Path::Auto);
            grads.register::<Flex>(node.id, dw);
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(
                node.id,
                input_grad(&x.shape(), w, grad, &options, Path::Auto),
            );
        }
    }
}
