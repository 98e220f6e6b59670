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
use burn_dispatch::backends::autodiff::checkpoint::strategy::NoCheckpointing;
use burn_dispatch::backends::autodiff::ops::{Backward, OpsKind};
use burn_dispatch::backends::flex::{FlexTensor, Layout};
use burn_dispatch::backends::{Autodiff, Flex};
use burn_dispatch::{
    BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind,
    GradientCheckpointingStrategy,
};

mod bias_leaky;
mod gemm_conv;
mod geometry;
mod samples;
mod scratch;
mod shifted;
mod winograd;

use self::bias_leaky::bias_leaky;
use self::gemm_conv::{GemmConv, Path, conv_forward};
use self::geometry::gemm_into;

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

#[cfg(test)]
mod tests {
    use super::gemm_conv::{input_grad, plan, weight_grad, winograd_forward};
    use super::geometry::Geometry;

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
