//! The bias, an optional residual and the leaky ReLU after a convolution as one fused pass
//! each way on burn-flex training (`forward_leaky`).

use burn::tensor::Tensor;
use burn::tensor::activation::leaky_relu;
use burn_dispatch::backends::Flex;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::checkpoint::strategy::NoCheckpointing;
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops, OpsKind};
use burn_dispatch::backends::flex::FlexTensor;
use rayon::prelude::*;

use super::{FlexAutodiff, contiguous_f32, flex_f32, on_flex_autodiff_f32};

/// `leaky_relu(y + bias + residual, slope)` for `y` `[B, C, H, W]` and `bias` `[C]`.
pub(super) fn bias_leaky(
    y: Tensor<4>,
    bias: Tensor<1>,
    residual: Option<Tensor<4>>,
    slope: f32,
) -> Tensor<4> {
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
pub(super) const LANES: usize = 16;

/// `z = leaky(y + bias[c] + r)`, one pass, planes across the cores.
pub(super) fn leaky_forward(
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
pub(super) struct BiasLeaky<const N: usize>;

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
