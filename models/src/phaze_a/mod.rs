//! faceswap's Phaze-A: a model assembled from options (encoder, bottleneck, fully-connected
//! "inter" layers, an optional G-block, decoders), in burn.
//!
//! Follows deepfakes/faceswap plugins/train/model/phaze_a.py and lib/model/nn_blocks.py:
//! - Encoder: "fs_original" (`depth` × 5×5 stride-2 conv + LReLU 0.1, filters doubling from
//!   min to max) or EfficientNetV2 B0–B3 (Keras' block table, swish, batch norm, squeeze-excite;
//!   width/depth multipliers), fed the face resized to `enc_scaling`% of the encoder's default
//!   size (1024 for fs_original, 224–300 for EfficientNetV2), as faceswap does.
//! - Bottleneck (in the encoder or at the start of each fc): optional norm (layer, rms,
//!   instance) then dense / global average pooling / global max pooling.
//! - Fully connected: dense layers on a node curve from min to max filters·dims², reshape to
//!   dims×dims, `fc_upsamples` upscales. `split_fc` gives each side its own; `shared_fc` adds a
//!   shared one concatenated on channels ("half" reuses the side's, "full" is its own: the LIAE
//!   style); the G-block fc produces a style vector instead.
//! - G-block (StyleGAN AdaIN): 3 dense style layers, conv, noise, two AdaIN levels.
//! - Decoder: log2(output/dims) upscales with filters on a curve from max to min, optional norm,
//!   residual blocks, a mask branch without them, sigmoid output convs.
//!
//! Deviations: no Keras-application weights (encoders start from scratch), no dropout, the
//! Keras encoders other than EfficientNetV2 B0–B3 are absent, `dec_upscales_in_fc` is not
//! offered, the output size over the fc size must be a power of two, and the mask is always
//! learned (merge uses it). `transpose` is an upscale method of ours (one 3×3 stride-2 conv).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::saehd::{FaceOutput, SwapOutput};

mod decoder;
mod efficientnet;
mod encoder;
mod fc;
mod layers;
mod options;
mod presets;
mod upscale;

use decoder::*;
use efficientnet::*;
use encoder::*;
use fc::*;
use layers::*;
pub use options::*;
pub use presets::{PRESETS, preset_text};
use upscale::*;

/// The Phaze-A networks of one model.
#[derive(Module, Debug)]
pub struct PhazeA {
    encoder: PaEncoder,
    /// A's fc (the common one without `split_fc`).
    fc_a: FullyConnected,
    fc_b: Option<FullyConnected>,
    /// `shared_fc = "full"`.
    fc_shared: Option<FullyConnected>,
    /// `shared_fc = "half"`: A's (or the common) fc also serves as the shared one.
    half_shared: bool,
    fc_gblock: Option<FullyConnected>,
    gblock_a: Option<GBlock>,
    gblock_b: Option<GBlock>,
    decoder_a: PaDecoder,
    decoder_b: Option<PaDecoder>,
}

impl PhazeA {
    /// The decoder input for one side (`b`: side B's fc, G-block) of an encoding.
    fn inter(&self, enc: Tensor<4>, b: bool, noise: bool) -> Tensor<4> {
        let own = match (&self.fc_b, b) {
            (Some(fc_b), true) => fc_b,
            _ => &self.fc_a,
        };
        let mut x = own.forward_map(enc.clone());
        if let Some(shared) = &self.fc_shared {
            x = Tensor::cat(vec![x, shared.forward_map(enc.clone())], 1);
        } else if self.half_shared {
            x = Tensor::cat(vec![x, self.fc_a.forward_map(enc.clone())], 1);
        }
        if let (Some(fc), Some(ga)) = (&self.fc_gblock, &self.gblock_a) {
            let g = match (&self.gblock_b, b) {
                (Some(gb), true) => gb,
                _ => ga,
            };
            x = g.forward(x, fc.forward_flat(enc), noise);
        }
        x
    }

    fn decoder(&self, b: bool) -> &PaDecoder {
        match (&self.decoder_b, b) {
            (Some(d), true) => d,
            _ => &self.decoder_a,
        }
    }

    /// Reconstructs both sides as a training step needs (training noise on).
    pub fn forward_train(
        &self,
        a: Tensor<4>,
        b: Tensor<4>,
    ) -> ((Tensor<4>, Tensor<4>), (Tensor<4>, Tensor<4>)) {
        let (ea, eb) = (self.encoder.forward(a), self.encoder.forward(b));
        (
            self.decoder_a.forward(self.inter(ea, false, true), true),
            self.decoder(true).forward(self.inter(eb, true, true), true),
        )
    }

    /// Both reconstructions and both swaps (no noise).
    pub fn forward(&self, a: Tensor<4>, b: Tensor<4>) -> FaceOutput {
        let (ea, eb) = (self.encoder.forward(a), self.encoder.forward(b));
        FaceOutput {
            a: self
                .decoder_a
                .forward(self.inter(ea.clone(), false, false), false),
            b: self
                .decoder(true)
                .forward(self.inter(eb.clone(), true, false), false),
            b_to_a: self.decoder_a.forward(self.inter(eb, false, false), false),
            a_to_b: self
                .decoder(true)
                .forward(self.inter(ea, true, false), false),
        }
    }

    /// Swaps destination (B) faces to A's identity, with the predicted and destination masks.
    pub fn swap(&self, b: Tensor<4>) -> SwapOutput {
        let enc = self.encoder.forward(b);
        let (face, face_mask) = self
            .decoder_a
            .forward(self.inter(enc.clone(), false, false), false);
        let (_, dst_mask) = self
            .decoder(true)
            .forward(self.inter(enc, true, false), false);
        SwapOutput {
            face,
            face_mask,
            dst_mask,
        }
    }
}

#[cfg(test)]
pub(crate) mod build_tests;
#[cfg(test)]
mod faceswap_preset_tests;
#[cfg(test)]
mod tests;
