//! The fully-connected "inter" layers and the StyleGAN G-block.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use crate::conv;
use crate::saehd::same_conv;

use super::*;

/// A fully-connected "inter": bottleneck (unless in the encoder), dense layers, then (not for
/// the G-block's) reshape to a feature map and upscales.
#[derive(Module, Debug)]
pub(super) struct FullyConnected {
    pub(super) bottleneck: Option<Bottleneck>,
    pub(super) denses: Vec<Linear>,
    pub(super) ups: Vec<Upscaler>,
    pub(super) lrelu_after: bool,
    pub(super) dims: usize,
}

impl FullyConnected {
    /// The fc and its output channels (the G-block's: its vector's length).
    pub(super) fn new(
        o: &PhazeAOptions,
        ch: usize,
        hw: usize,
        gblock: bool,
        device: &Device,
    ) -> (Self, usize) {
        let (bottleneck, mut width) = if o.bottleneck_in_encoder {
            (None, ch * hw * hw)
        } else {
            let (b, n) = Bottleneck::new(o, ch, hw, device);
            (Some(b), n)
        };
        let dims = o.fc_dimensions;
        let nodes = if gblock {
            curve(
                o.fc_gblock_min_nodes,
                o.fc_gblock_max_nodes,
                o.fc_gblock_depth,
                o.fc_gblock_filter_slope,
                SlopeMode::Full,
            )
        } else {
            curve(
                o.fc_min_filters * dims * dims,
                o.fc_max_filters * dims * dims,
                o.fc_depth,
                o.fc_filter_slope,
                SlopeMode::Full,
            )
        };
        let denses = nodes
            .iter()
            .map(|&n| {
                let d = LinearConfig::new(width, n).init(device);
                width = n;
                d
            })
            .collect();
        if gblock {
            let fc = FullyConnected {
                bottleneck,
                denses,
                ups: Vec::new(),
                lrelu_after: false,
                dims: 0,
            };
            return (fc, width);
        }
        let mut c = width / (dims * dims);
        let ups = (0..o.fc_upsamples)
            .map(|_| {
                let (u, out) = Upscaler::new(o.fc_upsampler, c, o.fc_upsample_filters, device);
                c = out;
                u
            })
            .collect();
        let fc = FullyConnected {
            bottleneck,
            denses,
            ups,
            lrelu_after: o.fc_upsampler == UpscaleMethod::Upsample2d && o.fc_upsamples > 0,
            dims,
        };
        (fc, c)
    }

    pub(super) fn forward_flat(&self, enc: Tensor<4>) -> Tensor<2> {
        // [B, C, h, w] → [B, nodes]
        let mut x = match &self.bottleneck {
            Some(b) => b.forward(enc),
            None => enc.flatten(1, 3),
        };
        for d in &self.denses {
            x = d.forward(x);
        }
        x
    }

    pub(super) fn forward_map(&self, enc: Tensor<4>) -> Tensor<4> {
        // [B, C, h, w] → [B, nodes] → [B, c, d, d] → [B, c', d·2^u, d·2^u]
        let x = self.forward_flat(enc);
        let [b, n] = x.dims();
        let d = self.dims;
        let mut x: Tensor<4> = x.reshape([b, n / (d * d), d, d]);
        for u in &self.ups {
            x = u.forward(x);
        }
        if self.lrelu_after {
            x = leaky_relu(x, 0.1);
        }
        x
    }
}

/// One AdaIN level of the G-block.
#[derive(Module, Debug)]
pub(super) struct GLevel {
    pub(super) beta: Linear,
    pub(super) gamma: Linear,
    pub(super) noise_conv: Conv2d,
    pub(super) conv: Option<Conv2d>,
}

/// faceswap's G-block (after AdaIN StyleGAN): the side's feature map restyled by a vector the
/// G-block fc draws from the encoding.
#[derive(Module, Debug)]
pub(super) struct GBlock {
    pub(super) style: Vec<Linear>,
    pub(super) conv_in: Conv2d,
    pub(super) levels: Vec<GLevel>,
}

impl GBlock {
    pub(super) fn new(ch: usize, style_in: usize, device: &Device) -> Self {
        const NODES: usize = 512;
        let mut width = style_in;
        let style = (0..3)
            .map(|_| {
                let d = LinearConfig::new(width, NODES).init(device);
                width = NODES;
                d
            })
            .collect();
        let levels = (0..2)
            .map(|i| GLevel {
                beta: LinearConfig::new(NODES, ch).init(device),
                gamma: LinearConfig::new(NODES, ch).init(device),
                noise_conv: same_conv(1, ch, ch, 1, 1, true, device),
                conv: (i == 1).then(|| same_conv(3, ch, ch, 1, 1, true, device)),
            })
            .collect();
        GBlock {
            style,
            conv_in: same_conv(3, ch, ch, 1, 1, true, device),
            levels,
        }
    }

    pub(super) fn forward(&self, x: Tensor<4>, style: Tensor<2>, noise: bool) -> Tensor<4> {
        // x [B, C, d, d], style [B, N] → [B, C, d, d]
        let mut s = style;
        for (i, d) in self.style.iter().enumerate() {
            s = d.forward(s);
            if i + 1 < self.style.len() {
                s = leaky_relu(s, 0.1);
            }
        }
        let mut x = conv::forward(&self.conv_in, x);
        if noise {
            x = gaussian_noise(x);
        }
        let [b, c, _, _] = x.dims();
        for level in &self.levels {
            let n = if noise {
                gaussian_noise(x.clone())
            } else {
                x.clone()
            };
            let n = conv::forward(&level.noise_conv, n);
            if let Some(conv) = &level.conv {
                x = conv::forward(conv, x);
            }
            let beta: Tensor<4> = level.beta.forward(s.clone()).reshape([b, c, 1, 1]);
            let gamma: Tensor<4> = level.gamma.forward(s.clone()).reshape([b, c, 1, 1]);
            x = leaky_relu(adain(x, beta, gamma) + n, 0.2);
        }
        x
    }
}

/// Adaptive instance norm: each channel normalised over the image, then `· γ + β`.
pub(super) fn adain(x: Tensor<4>, beta: Tensor<4>, gamma: Tensor<4>) -> Tensor<4> {
    // [B, C, H, W]; population std + ε 1e-3 (faceswap AdaInstanceNormalization)
    let mean = x.clone().mean_dim(2).mean_dim(3);
    let centred = x - mean;
    let std = centred
        .clone()
        .powf_scalar(2.0)
        .mean_dim(2)
        .mean_dim(3)
        .sqrt()
        .add_scalar(1e-3);
    centred / std * gamma + beta
}
