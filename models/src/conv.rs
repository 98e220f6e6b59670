//! 2-D convolution for the networks, as per-sample GEMMs while training on the CPU.
//!
//! burn-flex runs a convolution's forward as im2col tiles of 512 positions, its input gradient
//! as a transposed convolution and its weight gradient as another convolution whose output is
//! only k×k wide, where gemm runs its narrow 16-row kernel (45 % of a SAEHD-DF 128 px step,
//! perf, train_step bench). Here, on burn-flex under autodiff in f32 with groups 1, all three
//! are whole-sample GEMMs (a custom autodiff op): over the sample's column matrix `col(x_b)`
//! `[Ci·k², L]` — `Y_b = W · col(x_b)`, `dx_b = col2im(Wᵀ · dY_b)`, `dW += dY_b · col(x_b)ᵀ` —
//! or, for a stride-1 convolution whose column matrix would be large, one GEMM per kernel tap
//! over the zero-padded sample (`Shifted`). A 3×3 stride-1 convolution (most of SAEHD's
//! decoder) takes all three through Winograd F(4×4, 3×3) instead (`conv::winograd`), 4× fewer
//! multiplications. conv_layers bench: 0.27× burn's time over SAEHD's layer shapes (0.53×
//! before Winograd). [`forward_leaky`] fuses the bias, a residual and the leaky ReLU after
//! it. Every other backend, dtype or grouped convolution goes through burn's own `conv2d`
//! unchanged.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::leaky_relu;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use burn_backend::TensorMetadata;
use burn_dispatch::backends::autodiff::NodeId;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::checkpoint::strategy::NoCheckpointing;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops, OpsKind};
use burn_dispatch::backends::flex::{FlexTensor, Layout};
use burn_dispatch::backends::{Autodiff, Flex};
use burn_dispatch::{
    BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind,
    GradientCheckpointingStrategy,
};
use rayon::prelude::*;

mod scratch;
mod winograd;

/// Frees the scratch buffers kept between convolutions (call when training stops).
pub fn release_scratch() {
    scratch::release();
}

/// The autodiff backend our CPU training tensors live on (no gradient checkpointing).
type FlexAutodiff = Autodiff<Flex, NoCheckpointing>;

/// `conv.forward(x)` of a burn `Conv2d` module, through [`conv2d`].
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    // [B, Ci, H, W] → [B, Co, Ho, Wo]
    let options = module_options(conv, x.dims());
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `leaky_relu(conv.forward(x) + residual, slope)`. On burn-flex training the bias, residual
/// and activation are one pass each way (`BiasLeaky`); burn's `leaky_relu` alone is three
/// tensor ops forward and three backward, plus a stored mask (train_step profile).
pub fn forward_leaky(
    conv: &Conv2d,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    slope: f32,
) -> Tensor<4> {
    // [B, Ci, H, W] → [B, Co, Ho, Wo]
    let Some(bias) = conv.bias.as_ref().map(|b| b.val()) else {
        let y = forward(conv, x);
        let y = match residual {
            Some(r) => y + r,
            None => y,
        };
        return leaky_relu(y, f64::from(slope));
    };
    let options = module_options(conv, x.dims());
    bias_leaky(
        conv2d(x, conv.weight.val(), None, options),
        bias,
        residual,
        slope,
    )
}

/// The convolution options a burn `Conv2d` module runs with on an input of `dims`.
fn module_options(conv: &Conv2d, dims: [usize; 4]) -> ConvOptions<2> {
    let [_, _, h, w] = dims;
    let (k, s) = (conv.kernel_size, conv.stride);
    // (begin, end) per axis, as burn's Conv2d::forward works them out (its helper is private).
    let pairs = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [same_padding(k[0], s[0], h), same_padding(k[1], s[1], w)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    };
    ConvOptions::new_with_padding(conv.stride, pairs, conv.dilation, conv.groups)
}

/// `leaky_relu(y + bias + residual, slope)` for `y` `[B, C, H, W]` and `bias` `[C]`.
fn bias_leaky(y: Tensor<4>, bias: Tensor<1>, residual: Option<Tensor<4>>, slope: f32) -> Tensor<4> {
    let (y, bias) = (y.into_dispatch(), bias.into_dispatch());
    let residual = residual.map(Tensor::into_dispatch);
    let fused = slope > 0.0
        && on_flex_autodiff_f32(&y)
        && on_flex_autodiff_f32(&bias)
        && residual.as_ref().is_none_or(on_flex_autodiff_f32);
    let (y, bias) = (
        Tensor::<4>::from_dispatch(y),
        Tensor::<1>::from_dispatch(bias),
    );
    let residual = residual.map(Tensor::<4>::from_dispatch);
    if !fused {
        let c = bias.dims()[0];
        let sum = y + bias.reshape([1, c, 1, 1]);
        let sum = match residual {
            Some(r) => sum + r,
            None => sum,
        };
        return leaky_relu(sum, f64::from(slope));
    }
    let primitive = |t: Tensor<4>| {
        t.try_into_primitive::<FlexAutodiff>()
            .unwrap_or_else(|_| unreachable!("checked to be a burn-flex autodiff tensor"))
    };
    let (y, residual) = (primitive(y), residual.map(primitive));
    let Ok(bias) = bias.try_into_primitive::<FlexAutodiff>() else {
        unreachable!("checked to be a burn-flex autodiff tensor")
    };
    let z = leaky_forward(
        y.primitive(),
        bias.primitive(),
        residual.as_ref().map(|r| r.primitive()),
        slope,
    );
    // The output is kept for the backward (its sign is the input's).
    let out = match residual {
        Some(r) => match BiasLeaky::<3>
            .prepare::<NoCheckpointing>([y.node(), bias.node(), r.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((z.clone(), slope), z),
            OpsKind::UnTracked(prep) => prep.finish(z),
        },
        None => match BiasLeaky::<2>
            .prepare::<NoCheckpointing>([y.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((z.clone(), slope), z),
            OpsKind::UnTracked(prep) => prep.finish(z),
        },
    };
    Tensor::<4>::from_primitive::<FlexAutodiff>(out)
}

/// Floats summed per lane group: per-plane sums in 16 independent lanes vectorise.
const LANES: usize = 16;

/// `z = leaky(y + bias[c] + r)`, one pass, planes across the cores.
fn leaky_forward(
    y: &FlexTensor,
    bias: &FlexTensor,
    residual: Option<&FlexTensor>,
    slope: f32,
) -> FlexTensor {
    let (dims, y) = contiguous_f32(y.clone());
    let bias = bias.to_contiguous();
    let residual = residual.map(|r| r.to_contiguous());
    let (c, hw) = (dims[1], dims[2] * dims[3]);
    let (ys, bs) = (y.storage::<f32>(), bias.storage::<f32>());
    let rs = residual.as_ref().map(|r| r.storage::<f32>());
    let mut z = vec![0f32; ys.len()];
    z.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
        let b = bs[plane % c];
        let yp = &ys[plane * hw..(plane + 1) * hw];
        let act = |v: f32| if v < 0.0 { v * slope } else { v };
        match rs {
            Some(rs) => {
                let rp = &rs[plane * hw..(plane + 1) * hw];
                for ((o, &v), &r) in out.iter_mut().zip(yp).zip(rp) {
                    *o = act(v + b + r);
                }
            }
            None => {
                for (o, &v) in out.iter_mut().zip(yp) {
                    *o = act(v + b);
                }
            }
        }
    });
    flex_f32(z, dims)
}

/// The fused `leaky(y + bias + residual)`: `dy = dr = dz · (1 or slope)`, `db = Σ dy` per
/// channel. N = 2 without a residual, 3 with one.
#[derive(Debug)]
struct BiasLeaky<const N: usize>;

impl<const N: usize> Backward<Flex, N> for BiasLeaky<N> {
    /// The output `z` (its sign is the input's, slope > 0) and the slope.
    type State = (FlexTensor, f32);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dz = grads.consume::<Flex>(&ops.node);
        let (z, slope) = ops.state;
        let (dims, z) = contiguous_f32(z);
        let (_, dz) = contiguous_f32(dz);
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let (zs, dzs) = (z.storage::<f32>(), dz.storage::<f32>());
        let mut dy = vec![0f32; zs.len()];
        // Per-plane sums, then per channel over the batch in order: the same on any core count.
        let plane_sums: Vec<f32> = dy
            .par_chunks_mut(hw)
            .enumerate()
            .map(|(plane, out)| {
                let (zp, gp) = (&zs[plane * hw..], &dzs[plane * hw..]);
                let mut lanes = [0f32; LANES];
                for (i, ((o, &zv), &g)) in out.iter_mut().zip(zp).zip(gp).enumerate() {
                    *o = if zv < 0.0 { g * slope } else { g };
                    lanes[i % LANES] += *o;
                }
                lanes.iter().sum()
            })
            .collect();
        let mut db = vec![0f32; c];
        for (plane, sum) in plane_sums.iter().enumerate() {
            db[plane % c] += sum;
        }
        let dy = flex_f32(dy, dims);
        let mut parents = ops.parents.into_iter();
        if let Some(Some(node)) = parents.next() {
            grads.register::<Flex>(node.id, dy.clone());
        }
        if let Some(Some(node)) = parents.next() {
            grads.register::<Flex>(node.id, flex_f32(db, vec![c]));
        }
        if let Some(Some(node)) = parents.next() {
            grads.register::<Flex>(node.id, dy);
        }
    }
}

/// TensorFlow's "SAME" padding of one axis: output `ceil(n / stride)`, the odd pixel at the end.
pub fn same_padding(kernel: usize, stride: usize, n: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(n)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// burn's `conv2d` (same arguments, same result), with the weight gradient as per-sample GEMMs
/// when training on burn-flex in f32.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if options.groups != 1 {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    if !(on_flex_autodiff_f32(&x) && on_flex_autodiff_f32(&weight)) {
        return burn::tensor::module::conv2d(
            Tensor::from_dispatch(x),
            Tensor::from_dispatch(weight),
            bias,
            options,
        );
    }
    let (x, weight) = (
        Tensor::<4>::from_dispatch(x),
        Tensor::<4>::from_dispatch(weight),
    );
    let (Ok(x), Ok(weight)) = (
        x.try_into_primitive::<FlexAutodiff>(),
        weight.try_into_primitive::<FlexAutodiff>(),
    ) else {
        unreachable!("both tensors were checked to be burn-flex autodiff tensors")
    };
    let out = match GemmConv
        .prepare::<NoCheckpointing>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let w_state = prep.checkpoint(&weight);
            let y = conv_forward(
                x.into_primitive(),
                weight.into_primitive(),
                &options,
                Path::Auto,
            );
            prep.finish((x_state, w_state, options), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(conv_forward(
            x.into_primitive(),
            weight.into_primitive(),
            &options,
            Path::Auto,
        )),
    };
    let out = Tensor::<4>::from_primitive::<FlexAutodiff>(out);
    match bias {
        // [B, Co, Ho, Wo] + [1, Co, 1, 1]
        Some(b) => {
            let co = b.dims()[0];
            out + b.reshape([1, co, 1, 1])
        }
        None => out,
    }
}

/// Whether `x` is a burn-flex (CPU) tensor, under autodiff or not.
pub(crate) fn on_flex(x: &Tensor<4>) -> bool {
    let t = x.clone().into_dispatch();
    match &t.kind {
        DispatchTensorKind::Flex(_) => true,
        DispatchTensorKind::Autodiff(inner) => matches!(&**inner, DispatchTensorKind::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether a tensor is an f32 burn-flex tensor under autodiff without checkpointing.
fn on_flex_autodiff_f32(t: &DispatchTensor) -> bool {
    let DispatchTensorKind::Autodiff(inner) = &t.kind else {
        return false;
    };
    t.autodiff == DispatchAutodiffContext::Enabled(GradientCheckpointingStrategy::Disabled)
        && matches!(
            &**inner,
            DispatchTensorKind::Flex(BackendTensor::Autodiff(_))
        )
        && t.dtype() == DType::F32
}

/// Sizes, strides and padding of one 2-D convolution (groups 1), in elements.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: usize,
    pl: usize,
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], options: &ConvOptions<2>) -> Geometry {
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
    fn q(&self) -> usize {
        self.ci * self.kh * self.kw
    }

    /// Output positions per sample: `Ho·Wo`.
    fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// Whether the column matrix of a sample is the sample itself (1×1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
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
    fn valid_ox(&self, j: usize) -> std::ops::Range<usize> {
        let shift = j * self.dw;
        let first = self.pl.saturating_sub(shift).div_ceil(self.sw);
        let last = (self.w + self.pl)
            .saturating_sub(shift)
            .div_ceil(self.sw)
            .min(self.wo);
        first.min(last)..last
    }

    /// The input row read by output row `oy` at kernel row `i`, if inside the image.
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh)
            .checked_sub(self.pt)
            .filter(|&y| y < self.h)
    }

    /// `col[(c, i, j), (oy, ox)] = x[c, oy·sh + i·dh − pt, ox·sw + j·dw − pl]`, 0 outside:
    /// one sample `[Ci, H, W]` into its column matrix `[Ci·kh·kw, Ho·Wo]`.
    fn im2col(&self, xb: &[f32], col: &mut [f32]) {
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
    fn col2im(&self, col: &[f32], dxb: &mut [f32]) {
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
unsafe fn gemm_into(
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

/// How the samples of a batch share the cores: one sample per core with single-threaded GEMMs
/// when there are enough samples and a sample's scratch is small enough for two to share the
/// caches (no synchronisation inside a GEMM), else one sample at a time with threaded GEMMs.
fn parallelism(samples: usize, scratch_floats: usize) -> (bool, gemm::Parallelism) {
    // conv_layers bench, 2 cores: per-core samples won 3–8 % up to 38 MB of columns per
    // sample and lost 30 % at 75 MB.
    const MAX_SCRATCH_FLOATS: usize = 12 << 20;
    if samples >= rayon::current_num_threads() && scratch_floats <= MAX_SCRATCH_FLOATS {
        (true, gemm::Parallelism::None)
    } else {
        (false, gemm::Parallelism::Rayon(0))
    }
}

/// One worker's reusable buffers.
#[derive(Default)]
struct Scratch {
    input: Vec<f32>,
    output: Vec<f32>,
}

/// `work(item, scratch)` for every item, across the cores or one after another.
fn for_each_sample<T: Send>(
    items: Vec<T>,
    across_samples: bool,
    work: impl Fn(T, &mut Scratch) + Sync,
) {
    if across_samples {
        items
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, item| work(item, scratch));
    } else {
        let mut scratch = Scratch::default();
        for item in items {
            work(item, &mut scratch);
        }
    }
}

/// `buf` resized to `len` and zeroed.
fn zeroed(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(len, 0.0);
    buf
}

/// A sample's column matrix: the sample itself for a pointwise convolution, else `buf` filled.
fn columns<'a>(g: &Geometry, xb: &'a [f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
    if g.is_pointwise() {
        return xb;
    }
    buf.resize(g.q() * g.l(), 0.0);
    g.im2col(xb, buf);
    buf
}

/// A stride-1 convolution as kh·kw GEMMs, one per kernel tap, each reading the zero-padded
/// sample `[Ci, Hp·Wp]` shifted by the tap: no column matrix (kh·kw times the sample) is built.
/// Outputs live on the padded width ("wide" rows of `Wp`, the last `Wp − Wo` columns unused).
#[derive(Debug, Clone, Copy)]
struct Shifted {
    g: Geometry,
    wp: usize,
    /// Floats per padded channel: `Hp·Wp` plus the widest tap shift, so no tap's view of one
    /// channel runs into the next.
    stride: usize,
}

impl Shifted {
    fn new(g: Geometry) -> Option<Shifted> {
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
    fn wide(&self) -> usize {
        self.g.ho * self.wp
    }

    /// Where tap `t` (kernel row `t / kw`, column `t % kw`) starts reading a padded channel.
    fn offset(&self, t: usize) -> usize {
        (t / self.g.kw) * self.g.dh * self.wp + (t % self.g.kw) * self.g.dw
    }

    fn taps(&self) -> usize {
        self.g.kh * self.g.kw
    }

    /// Where input row `y` starts in a padded channel.
    fn padded_row(&self, y: usize) -> usize {
        (y + self.g.pt) * self.wp + self.g.pl
    }

    /// One sample `[Ci, H, W]` zero-padded into `buf` `[Ci, stride]`.
    fn pad<'a>(&self, xb: &[f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
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
    fn widen<'a>(&self, gb: &[f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
        let g = &self.g;
        let wide = zeroed(buf, g.co * self.wide());
        for (src, dst) in gb.chunks_exact(g.wo).zip(wide.chunks_exact_mut(self.wp)) {
            dst[..g.wo].copy_from_slice(src);
        }
        wide
    }

    fn forward(
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

    fn input_grad(
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
    fn weight_grad(
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
    fn scratch_floats(&self) -> usize {
        self.g.ci * self.stride + self.g.co.max(1) * self.wide()
    }
}

fn contiguous_f32(t: FlexTensor) -> (Vec<usize>, FlexTensor) {
    let t = t.to_contiguous();
    (t.shape().to_vec(), t)
}

fn flex_f32(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        burn_backend::Bytes::from_elems(values),
        Layout::contiguous(burn_backend::Shape::from(dims)),
        DType::F32,
    )
}

/// Which GEMM formulation a convolution uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the forced paths are compared with each other in tests"
    )
)]
enum Path {
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
const SHIFTED_MIN_COLUMNS: usize = 8 << 20;

/// The per-tap plan for `g` on `path`, or `None` for the column matrix.
fn plan(g: Geometry, path: Path) -> Option<Shifted> {
    match path {
        Path::Columns => None,
        Path::Shifted => Shifted::new(g),
        Path::Auto | Path::Winograd => {
            Shifted::new(g).filter(|_| g.q() * g.l() >= SHIFTED_MIN_COLUMNS)
        }
    }
}

/// Channels from which Auto takes Winograd for a 3×3 stride-1 convolution.
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// The Winograd correlation for `g`'s forward on `path`, or `None` when it does not apply.
fn winograd_forward(g: &Geometry, path: Path) -> Option<winograd::Correlation> {
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
fn winograd_input_grad(g: &Geometry, path: Path) -> Option<winograd::Correlation> {
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

fn winograd_applies(g: &Geometry, path: Path) -> bool {
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
fn scratch_floats(g: &Geometry, shifted: &Option<Shifted>) -> usize {
    match shifted {
        Some(sh) => sh.scratch_floats(),
        None => g.q() * g.l(),
    }
}

/// A convolution's output `[B, Co, Ho, Wo]`: per sample, `Y_b[Co, L] = W[Co, Q] · col(x_b)[Q, L]`
/// (stride 1: one GEMM per kernel tap instead, see [`Shifted`]).
fn conv_forward(
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
fn input_grad(
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
const SAMPLES_PER_PARTIAL: usize = 2;

/// `dL/dW` `[Co, Ci, kh, kw]`: `Σ_b dY_b[Co, L] · col(x_b)ᵀ[L, Q]` (stride 1: per tap), as
/// partial sums over fixed runs of samples added in order.
fn weight_grad(
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
struct GemmConv;

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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// Output, dx, dW and db, flattened.
    type Results = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// The largest `|a − b| / (1 + |b|)` over two equally long results.
    fn worst(name: &str, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "{name}");
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
            .fold(0.0f32, f32::max)
    }

    /// Output, dx and dW on `path` against the column matrix, on fixed inputs.
    fn assert_path_equals_columns(
        x_dims: [usize; 4],
        w_dims: [usize; 4],
        options: &ConvOptions<2>,
        path: Path,
        tolerance: f32,
    ) {
        let values = |n: usize, seed: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.731 + seed).sin()).collect()
        };
        let g = Geometry::new(&x_dims, &w_dims, options);
        let n = |d: &[usize]| d.iter().product::<usize>();
        let x = flex_f32(values(n(&x_dims), 0.3), x_dims.to_vec());
        let w = flex_f32(values(n(&w_dims), 1.1), w_dims.to_vec());
        let dy = flex_f32(
            values(g.batch * g.co * g.l(), 2.0),
            vec![g.batch, g.co, g.ho, g.wo],
        );
        let run = |path: Path| {
            [
                conv_forward(x.clone(), w.clone(), options, path),
                input_grad(&x_dims, w.clone(), dy.clone(), options, path),
                weight_grad(&x, &dy, &w_dims, options, path),
            ]
            .map(|t| t.storage::<f32>().to_vec())
        };
        let (columns, other) = (run(Path::Columns), run(path));
        for ((name, a), b) in ["output", "dx", "dw"].iter().zip(&columns).zip(&other) {
            let worst = worst(name, a, b);
            assert!(worst < tolerance, "{path:?} {name} {options:?}: {worst}");
        }
    }

    /// Gradients of sum(conv(x, w) · r) through [`conv2d`] and through burn's own conv2d, on the
    /// same inputs (drawn once, under the trainers' lock: tests share the device's generator).
    fn grads(options: &ConvOptions<2>, kernel: [usize; 2]) -> [Results; 2] {
        let device = Device::flex().autodiff();
        let draws = crate::weights::random_draws();
        let data = |dims: Vec<usize>| {
            Tensor::<1>::random(
                [dims.iter().product::<usize>()],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
        };
        let (xd, wd, bd) = (vec![2, 3, 11, 9], vec![5, 3, kernel[0], kernel[1]], vec![5]);
        let (xv, wv, bv) = (data(xd.clone()), data(wd.clone()), data(bd.clone()));
        drop(draws);
        let mut r: Option<Vec<f32>> = None;
        [true, false].map(|ours| {
            let t4 = |v: &[f32], d: &[usize]| {
                Tensor::<1>::from_floats(v, &device)
                    .reshape([d[0], d[1], d[2], d[3]])
                    .require_grad()
            };
            let (x, w) = (t4(&xv, &xd), t4(&wv, &wd));
            let b = Tensor::<1>::from_floats(bv.as_slice(), &device).require_grad();
            // The GEMM path must be the one taken here, or this compares burn with itself.
            assert!(on_flex_autodiff_f32(&x.clone().into_dispatch()));
            assert!(on_flex_autodiff_f32(&w.clone().into_dispatch()));
            let y = if ours {
                conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone())
            } else {
                burn::tensor::module::conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone())
            };
            let dims = y.dims();
            let rv = r.get_or_insert_with(|| data(dims.to_vec())).clone();
            let r = Tensor::<1>::from_floats(rv.as_slice(), &device).reshape(dims);
            let g = (y.clone() * r).sum().backward();
            let v = |t: Option<Tensor<4>>| t.map(|t| t.into_data().try_to_vec::<f32>().unwrap());
            (
                y.into_data().try_to_vec().unwrap(),
                v(x.grad(&g)).unwrap(),
                v(w.grad(&g)).unwrap(),
                b.grad(&g).unwrap().into_data().try_to_vec().unwrap(),
            )
        })
    }

    #[test]
    fn per_tap_gemms_equal_the_column_matrix() {
        for (x_dims, w_dims, options) in [
            (
                [3, 4, 9, 7],
                [5, 4, 3, 3],
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            ),
            (
                [2, 3, 8, 10],
                [4, 3, 3, 2],
                ConvOptions::new_with_padding([1, 1], [(2, 0), (1, 3)], [1, 2], 1),
            ),
            (
                [1, 2, 6, 5],
                [3, 2, 5, 5],
                ConvOptions::new([1, 1], [0, 2], [1, 1], 1),
            ),
        ] {
            let g = Geometry::new(&x_dims, &w_dims, &options);
            assert!(plan(g, Path::Shifted).is_some(), "{options:?}");
            assert_path_equals_columns(x_dims, w_dims, &options, Path::Shifted, 1e-5);
        }
    }

    #[test]
    fn fused_bias_residual_leaky_equals_burns_ops() {
        use burn::nn::conv::Conv2dConfig;
        let device = Device::flex().autodiff();
        let draws = crate::weights::random_draws();
        let conv = Conv2dConfig::new([4, 5], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let data = |n: usize| {
            Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (xv, rv, wv) = (
            data(2 * 4 * 7 * 6),
            data(2 * 5 * 7 * 6),
            data(2 * 5 * 7 * 6),
        );
        drop(draws);
        let t4 = |v: &[f32], d: [usize; 4]| {
            Tensor::<1>::from_floats(v, &device)
                .reshape(d)
                .require_grad()
        };
        for with_residual in [false, true] {
            let run = |fused: bool| {
                let (x, r) = (t4(&xv, [2, 4, 7, 6]), t4(&rv, [2, 5, 7, 6]));
                let residual = with_residual.then(|| r.clone());
                let z = if fused {
                    forward_leaky(&conv, x.clone(), residual, 0.2)
                } else {
                    let y = forward(&conv, x.clone());
                    let y = match residual {
                        Some(r) => y + r,
                        None => y,
                    };
                    leaky_relu(y, 0.2)
                };
                let weights =
                    Tensor::<1>::from_floats(wv.as_slice(), &device).reshape([2, 5, 7, 6]);
                let g = (z.clone() * weights).sum().backward();
                let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
                let flat = |t: Option<Tensor<4>>| t.map(|t| v(t.flatten(0, 3)));
                [
                    v(z.flatten(0, 3)),
                    flat(x.grad(&g)).unwrap(),
                    flat(conv.weight.grad(&g)).unwrap(),
                    v(conv.bias.as_ref().unwrap().grad(&g).unwrap()),
                    flat(r.grad(&g)).unwrap_or_default(),
                ]
            };
            let (ours, burns) = (run(true), run(false));
            assert!(ours[0].iter().any(|&v| v < 0.0) && ours[0].iter().any(|&v| v > 0.0));
            for (name, a, b) in ["output", "dx", "dw", "db", "dresidual"]
                .iter()
                .zip(&ours)
                .zip(&burns)
                .map(|((n, a), b)| (n, a, b))
            {
                let worst = worst(name, a, b);
                assert!(worst < 1e-5, "{name} residual {with_residual}: {worst}");
            }
        }
    }

    #[test]
    fn winograd_equals_the_column_matrix() {
        for (x_dims, w_dims, options) in [
            // SAEHD's 3×3 "SAME" on sizes that are and are not whole 4×4 tiles.
            (
                [2, 9, 8, 8],
                [12, 9, 3, 3],
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            ),
            (
                [3, 5, 9, 7],
                [4, 5, 3, 3],
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            ),
            // Valid, and uneven padding on both ends.
            (
                [1, 6, 11, 10],
                [3, 6, 3, 3],
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            ),
            (
                [2, 4, 6, 5],
                [7, 4, 3, 3],
                ConvOptions::new_with_padding([1, 1], [(2, 0), (0, 2)], [1, 1], 1),
            ),
            // 1×1 output.
            (
                [1, 3, 3, 3],
                [2, 3, 3, 3],
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            ),
        ] {
            let g = Geometry::new(&x_dims, &w_dims, &options);
            assert!(
                winograd_forward(&g, Path::Winograd).is_some(),
                "{options:?}"
            );
            // F(4×4, 3×3) rounds more than the direct sums (its transforms scale by up to 8).
            assert_path_equals_columns(x_dims, w_dims, &options, Path::Winograd, 1e-4);
        }
    }

    #[test]
    fn gradients_equal_burns_own_convolution() {
        for (options, kernel) in [
            // SAEHD's 5×5 stride 2 "SAME" padding (1 before, 2 after) on odd sizes.
            (
                ConvOptions::new_with_padding([2, 2], [(1, 2), (2, 1)], [1, 1], 1),
                [5, 3],
            ),
            (ConvOptions::new([1, 1], [1, 0], [1, 1], 1), [5, 3]),
            (ConvOptions::new([1, 2], [0, 2], [2, 1], 1), [5, 3]),
            // Padding wider than the kernel reaches: whole rows and columns of zeros.
            (ConvOptions::new([3, 2], [4, 3], [1, 1], 1), [3, 1]),
            // Stride 1, one GEMM per tap: SAEHD's 3×3 "SAME", then uneven padding and dilation.
            (ConvOptions::new([1, 1], [1, 1], [1, 1], 1), [3, 3]),
            (
                ConvOptions::new_with_padding([1, 1], [(1, 2), (0, 3)], [2, 1], 1),
                [3, 2],
            ),
            (ConvOptions::new([1, 1], [0, 0], [1, 1], 1), [2, 3]),
            // Pointwise: the sample is its own column matrix.
            (ConvOptions::new([1, 1], [0, 0], [1, 1], 1), [1, 1]),
            (ConvOptions::new([2, 2], [0, 0], [1, 1], 1), [1, 1]),
        ] {
            let [a, b] = grads(&options, kernel);
            for (name, ours, theirs) in [
                ("output", &a.0, &b.0),
                ("dx", &a.1, &b.1),
                ("dw", &a.2, &b.2),
                ("db", &a.3, &b.3),
            ] {
                let worst = worst(name, ours, theirs);
                assert!(worst < 1e-5, "{name} {options:?}: {worst}");
            }
        }
    }
}
