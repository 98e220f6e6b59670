//! The upscale methods (subpixel, resize-conv, transpose, bilinear).

use burn::module::Module;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{PixelShuffle, PixelShuffleConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use crate::conv;
use crate::saehd::same_conv;

use super::*;

/// A 2× upscale.
// A handful per model, built once; burn's Module derive does not take boxed fields.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub(super) enum Upscaler {
    Subpixel(SubpixelUp),
    ResizeImages(ResizeConvUp),
    Transpose(TransposeUp),
    Bilinear(BilinearUp),
}

#[derive(Module, Debug)]
pub(super) struct SubpixelUp {
    pub(super) conv: Conv2d,
    pub(super) shuffle: PixelShuffle,
}

#[derive(Module, Debug)]
pub(super) struct ResizeConvUp {
    pub(super) conv: Conv2d,
    pub(super) transpose: ConvTranspose2d,
}

#[derive(Module, Debug)]
pub(super) struct TransposeUp {
    pub(super) transpose: ConvTranspose2d,
}

#[derive(Module, Debug)]
pub(super) struct BilinearUp {
    pub(super) factor: usize,
}

pub(super) fn transpose_conv(i: usize, o: usize, device: &Device) -> ConvTranspose2d {
    // Keras "same" 3×3 stride 2: output exactly twice the input.
    ConvTranspose2dConfig::new([i, o], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .with_padding_out([1, 1])
        .init(device)
}

impl Upscaler {
    /// The upscaler and its output channels.
    pub(super) fn new(
        method: UpscaleMethod,
        i: usize,
        o: usize,
        device: &Device,
    ) -> (Upscaler, usize) {
        match method {
            UpscaleMethod::Subpixel => (
                Upscaler::Subpixel(SubpixelUp {
                    conv: same_conv(3, i, 4 * o, 1, 1, true, device),
                    shuffle: PixelShuffleConfig::new(2).init(),
                }),
                o,
            ),
            UpscaleMethod::ResizeImages => (
                Upscaler::ResizeImages(ResizeConvUp {
                    conv: same_conv(3, i, o, 1, 1, true, device),
                    transpose: transpose_conv(i, o, device),
                }),
                o,
            ),
            UpscaleMethod::Transpose => (
                Upscaler::Transpose(TransposeUp {
                    transpose: transpose_conv(i, o, device),
                }),
                o,
            ),
            UpscaleMethod::Upsample2d => (Upscaler::Bilinear(BilinearUp { factor: 2 }), i),
        }
    }

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, I, H, W] → [B, O, 2H, 2W]
        let [_, _, h, w] = x.dims();
        match self {
            Upscaler::Subpixel(u) => u
                .shuffle
                .forward(leaky_relu(conv::forward(&u.conv, x), 0.1)),
            Upscaler::ResizeImages(u) => {
                let sr = conv::forward(&u.conv, resize(x.clone(), [2 * h, 2 * w]));
                leaky_relu(sr + u.transpose.forward(x), 0.2)
            }
            Upscaler::Transpose(u) => leaky_relu(u.transpose.forward(x), 0.1),
            Upscaler::Bilinear(u) => resize(x, [u.factor * h, u.factor * w]),
        }
    }
}
