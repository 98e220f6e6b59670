//! The Phaze-A encoder: fs_original or EfficientNetV2, then the bottleneck.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use crate::conv;
use crate::saehd::same_conv;

use super::*;

/// faceswap's "original" encoder: 5×5 stride-2 convs + LReLU 0.1.
#[derive(Module, Debug)]
pub(super) struct FsOriginal {
    pub(super) convs: Vec<Conv2d>,
}

// One per model, built once; burn's Module derive does not take boxed fields.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub(super) enum EncoderBody {
    FsOriginal(FsOriginal),
    EfficientNetV2(EfficientNetV2),
}

/// Flatten/pool (after an optional norm) a feature map into a vector.
#[derive(Module, Debug)]
pub(super) struct Bottleneck {
    pub(super) norm: Option<FeatureNorm>,
    pub(super) dense: Option<Linear>,
    pub(super) max_pool: bool,
}

impl Bottleneck {
    pub(super) fn new(o: &PhazeAOptions, ch: usize, hw: usize, device: &Device) -> (Self, usize) {
        let (dense, out) = match o.bottleneck_type {
            BottleneckType::Dense => (
                Some(LinearConfig::new(ch * hw * hw, o.bottleneck_size).init(device)),
                o.bottleneck_size,
            ),
            _ => (None, ch),
        };
        (
            Bottleneck {
                norm: FeatureNorm::new(o.bottleneck_norm, ch, device),
                dense,
                max_pool: o.bottleneck_type == BottleneckType::MaxPooling,
            },
            out,
        )
    }

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        // [B, C, H, W] → [B, N]
        let x = apply_norm(&self.norm, x);
        let [b, c, _, _] = x.dims();
        match &self.dense {
            Some(d) => d.forward(x.flatten(1, 3)),
            None if self.max_pool => x.flatten::<3>(2, 3).max_dim(2).reshape([b, c]),
            None => x.flatten::<3>(2, 3).mean_dim(2).reshape([b, c]),
        }
    }
}

/// The encoder: resize to its input size, the body, and the bottleneck when it lives here.
#[derive(Module, Debug)]
pub(super) struct PaEncoder {
    pub(super) body: EncoderBody,
    pub(super) bottleneck: Option<Bottleneck>,
    pub(super) input_size: usize,
}

impl PaEncoder {
    /// The encoder and the channels and width of its output (a bottleneck here makes it
    /// `[N, 1, 1]`).
    pub(super) fn new(o: &PhazeAOptions, device: &Device) -> (Self, (usize, usize)) {
        let input_size = o.input_size();
        let (body, ch, hw) = match o.enc_architecture {
            EncoderArch::FsOriginal => {
                let mut filters = o.fs_original_min_filters;
                let mut last = 3;
                let convs = (0..o.fs_original_depth)
                    .map(|_| {
                        let c = same_conv(5, last, filters, 2, 1, true, device);
                        last = filters;
                        filters = o.fs_original_max_filters.min(filters * 2);
                        c
                    })
                    .collect();
                (
                    EncoderBody::FsOriginal(FsOriginal { convs }),
                    last,
                    input_size >> o.fs_original_depth,
                )
            }
            arch => {
                let (w, d) = arch.coefficients();
                let w = if o.enc_width > 0.0 { o.enc_width } else { w };
                let d = if o.enc_depth > 0.0 { o.enc_depth } else { d };
                let (net, ch) = EfficientNetV2::new(w, d, device);
                (EncoderBody::EfficientNetV2(net), ch, input_size / 32)
            }
        };
        let hw = hw.max(1);
        let (bottleneck, shape) = if o.bottleneck_in_encoder {
            let (b, n) = Bottleneck::new(o, ch, hw, device);
            (Some(b), (n, 1))
        } else {
            (None, (ch, hw))
        };
        let encoder = PaEncoder {
            body,
            bottleneck,
            input_size,
        };
        (encoder, shape)
    }

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, 3, R, R] → [B, C, h, w] (or [B, N, 1, 1] with the bottleneck here)
        let [b, _, h, w] = x.dims();
        let mut x = if (h, w) != (self.input_size, self.input_size) {
            resize(x, [self.input_size, self.input_size])
        } else {
            x
        };
        x = match &self.body {
            EncoderBody::FsOriginal(f) => {
                for c in &f.convs {
                    x = leaky_relu(conv::forward(c, x), 0.1);
                }
                x
            }
            EncoderBody::EfficientNetV2(n) => n.forward(x.mul_scalar(2.0).sub_scalar(1.0)),
        };
        match &self.bottleneck {
            Some(bn) => {
                let v = bn.forward(x);
                let n = v.dims()[1];
                v.reshape([b, n, 1, 1])
            }
            None => x,
        }
    }
}
