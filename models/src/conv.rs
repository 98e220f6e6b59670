//! 2-D convolution for the networks, with a faster weight gradient while training on the CPU.
//!
//! burn-flex differentiates a convolution's weight as another convolution whose output is only
//! k×k wide; gemm then runs its narrow 16-row kernel, which took 45 % of a SAEHD-DF 128 px step
//! (perf, train_step bench). Here, on burn-flex under autodiff in f32, the weight gradient is
//! one GEMM per sample instead — `dW[Co, Ci·k²] += dY_b[Co, L] · im2col(x_b)[Ci·k², L]ᵀ` —
//! while the forward and the input gradient stay burn's. Every other backend, dtype or grouped
//! convolution goes through burn's own `conv2d` unchanged.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use burn_backend::TensorMetadata;
use burn_backend::ops::ModuleOps;
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

/// The autodiff backend our CPU training tensors live on (no gradient checkpointing).
type FlexAutodiff = Autodiff<Flex, NoCheckpointing>;

/// `conv.forward(x)` of a burn `Conv2d` module, through [`conv2d`].
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    // [B, Ci, H, W] → [B, Co, Ho, Wo]
    let [_, _, h, w] = x.dims();
    let (k, s) = (conv.kernel_size, conv.stride);
    // (begin, end) per axis, as burn's Conv2d::forward works them out (its helper is private).
    let pairs = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [same_padding(k[0], s[0], h), same_padding(k[1], s[1], w)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    };
    let options = ConvOptions::new_with_padding(conv.stride, pairs, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// TensorFlow's "SAME" padding of one axis: output `ceil(n / stride)`, the odd pixel at the end.
fn same_padding(kernel: usize, stride: usize, n: usize) -> (usize, usize) {
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
    let out = match GemmWeightGradConv
        .prepare::<NoCheckpointing>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let w_state = prep.checkpoint(&weight);
            let y = Flex::conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                None,
                options.clone(),
            );
            prep.finish((x_state, w_state, options), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(Flex::conv2d(
            x.into_primitive(),
            weight.into_primitive(),
            None,
            options,
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

/// The convolution's backward: input gradient from burn-flex, weight gradient by GEMM.
#[derive(Debug)]
struct GemmWeightGradConv;

impl Backward<Flex, 2> for GemmWeightGradConv {
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
            let dw = weight_grad(&x, &grad, &w.shape(), &options);
            grads.register::<Flex>(node.id, dw);
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, Flex::conv2d_x_backward(x, w, grad, options));
        }
    }
}

/// `dL/dW` `[Co, Ci, kh, kw]` of a convolution (groups 1) from its input `x` `[B, Ci, H, W]` and
/// output gradient `[B, Co, Ho, Wo]`: per sample, im2col then one GEMM accumulated into dW.
fn weight_grad(
    x: &FlexTensor,
    grad: &FlexTensor,
    w_dims: &[usize],
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
    let xd = x.shape();
    let gd = grad.shape();
    let (b, ci, h, w) = (xd[0], xd[1], xd[2], xd[3]);
    let (co, ho, wo) = (gd[1], gd[2], gd[3]);
    let (kh, kw) = (w_dims[2], w_dims[3]);
    let (l, q) = (ho * wo, ci * kh * kw);
    let xs = x.storage::<f32>();
    let gs = grad.storage::<f32>();
    let mut dw = vec![0f32; co * q];
    let mut col = vec![0f32; q * l];
    let (sh, sw) = (options.stride[0], options.stride[1]);
    let (dh, dwl) = (options.dilation[0], options.dilation[1]);
    let (pt, pl) = (options.padding[0].0, options.padding[1].0);
    for s in 0..b {
        let xb = &xs[s * ci * h * w..(s + 1) * ci * h * w];
        // col[(c, i, j), (oy, ox)] = x[c, oy·sh + i·dh − pt, ox·sw + j·dw − pl], 0 outside.
        col.par_chunks_mut(l).enumerate().for_each(|(row, out)| {
            let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
            let plane = &xb[c * h * w..(c + 1) * h * w];
            for oy in 0..ho {
                let dst = &mut out[oy * wo..(oy + 1) * wo];
                let y = (oy * sh + i * dh) as isize - pt as isize;
                if y < 0 || y >= h as isize {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[y as usize * w..(y as usize + 1) * w];
                for (ox, d) in dst.iter_mut().enumerate() {
                    let xx = (ox * sw + j * dwl) as isize - pl as isize;
                    *d = if xx >= 0 && (xx as usize) < w {
                        src[xx as usize]
                    } else {
                        0.0
                    };
                }
            }
        });
        let gb = &gs[s * co * l..(s + 1) * co * l];
        // dW [Co, Q] (+)= dY_b [Co, L] · colᵀ [L, Q]
        // SAFETY: the pointers and strides describe the three live buffers above, in bounds
        // (dw: co×q row-major, gb: co×l row-major, col: q×l row-major read as its transpose).
        unsafe {
            gemm::gemm(
                co,
                q,
                l,
                dw.as_mut_ptr(),
                1,
                q as isize,
                true,
                gb.as_ptr(),
                1,
                l as isize,
                col.as_ptr(),
                l as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    }
    FlexTensor::new(
        burn_backend::Bytes::from_elems(dw),
        Layout::contiguous(burn_backend::Shape::from(w_dims.to_vec())),
        DType::F32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// Output, dx, dW and db, flattened.
    type Results = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// Gradients of sum(conv(x, w) · r) through [`conv2d`] and through burn's own conv2d, on the
    /// same inputs (drawn once: other tests share the device's random generator).
    fn grads(options: &ConvOptions<2>) -> [Results; 2] {
        let device = Device::flex().autodiff();
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
        let (xd, wd, bd) = (vec![2, 3, 11, 9], vec![5, 3, 5, 3], vec![5]);
        let (xv, wv, bv) = (data(xd.clone()), data(wd.clone()), data(bd.clone()));
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
    fn gradients_equal_burns_own_convolution() {
        for options in [
            // SAEHD's 5×5 stride 2 "SAME" padding (1 before, 2 after) on odd sizes.
            ConvOptions::new_with_padding([2, 2], [(1, 2), (2, 1)], [1, 1], 1),
            ConvOptions::new([1, 1], [1, 0], [1, 1], 1),
            ConvOptions::new([1, 2], [0, 2], [2, 1], 1),
        ] {
            let [a, b] = grads(&options);
            for (name, ours, theirs) in [
                ("output", &a.0, &b.0),
                ("dx", &a.1, &b.1),
                ("dw", &a.2, &b.2),
                ("db", &a.3, &b.3),
            ] {
                assert_eq!(ours.len(), theirs.len(), "{name}");
                let worst = ours
                    .iter()
                    .zip(theirs)
                    .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "{name} {options:?}: {worst}");
            }
        }
    }
}
