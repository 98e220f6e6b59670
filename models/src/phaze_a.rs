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
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, InstanceNorm, InstanceNormConfig, LayerNorm, LayerNormConfig,
    Linear, LinearConfig, PixelShuffle, PixelShuffleConfig, RmsNorm, RmsNormConfig,
};
use burn::tensor::activation::{leaky_relu, sigmoid, silu};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Distribution, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::conv;
use crate::saehd::{FaceOutput, ResBlock, SwapOutput, same_conv};

/// Whether a shared fully-connected layer joins each side's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedFc {
    /// Each side uses only its own (or the one common) fc.
    None,
    /// The A (or common) fc's output is concatenated to every side's.
    Half,
    /// A separate shared fc's output is concatenated to every side's (LIAE style).
    Full,
}

/// The encoder network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncoderArch {
    /// faceswap's "original" conv encoder.
    #[serde(rename = "fs_original")]
    FsOriginal,
    /// EfficientNetV2-B0.
    #[serde(rename = "efficientnet_v2_b0")]
    EfficientNetV2B0,
    /// EfficientNetV2-B1.
    #[serde(rename = "efficientnet_v2_b1")]
    EfficientNetV2B1,
    /// EfficientNetV2-B2.
    #[serde(rename = "efficientnet_v2_b2")]
    EfficientNetV2B2,
    /// EfficientNetV2-B3.
    #[serde(rename = "efficientnet_v2_b3")]
    EfficientNetV2B3,
}

impl EncoderArch {
    /// faceswap's default input size for the encoder (`_MODEL_MAPPING`).
    fn default_size(self) -> usize {
        match self {
            EncoderArch::FsOriginal => 1024,
            EncoderArch::EfficientNetV2B0 => 224,
            EncoderArch::EfficientNetV2B1 => 240,
            EncoderArch::EfficientNetV2B2 => 260,
            EncoderArch::EfficientNetV2B3 => 300,
        }
    }

    /// Keras' (width, depth) coefficients for the EfficientNetV2 variants.
    fn coefficients(self) -> (f32, f32) {
        match self {
            EncoderArch::FsOriginal | EncoderArch::EfficientNetV2B0 => (1.0, 1.0),
            EncoderArch::EfficientNetV2B1 => (1.0, 1.1),
            EncoderArch::EfficientNetV2B2 => (1.1, 1.2),
            EncoderArch::EfficientNetV2B3 => (1.2, 1.4),
        }
    }
}

/// What turns the encoder's feature map into a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BottleneckType {
    /// Flatten, then a dense layer of `bottleneck_size` nodes.
    Dense,
    /// Global average pooling (one value per channel).
    AveragePooling,
    /// Global max pooling.
    MaxPooling,
}

/// A normalisation layer choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// No normalisation.
    None,
    /// Layer norm over channels.
    Layer,
    /// RMS norm over channels.
    Rms,
    /// Instance norm (per channel over the image).
    Instance,
    /// Batch norm (decoders only).
    Batch,
}

/// How a feature map is doubled in size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpscaleMethod {
    /// 3×3 conv to 4× the filters + LReLU 0.1 + depth-to-space.
    Subpixel,
    /// Bilinear resize + 3×3 conv, added to a 3×3 stride-2 transposed conv, LReLU 0.2.
    ResizeImages,
    /// A 3×3 stride-2 transposed conv + LReLU 0.1.
    Transpose,
    /// Bilinear resize only (channels unchanged).
    Upsample2d,
}

/// How the decoder's filter curve is drawn (faceswap `_get_curve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlopeMode {
    /// A curve from the first value to the last.
    Full,
    /// Pad the start with the first value, then step down.
    CapMax,
    /// Step down to the last value, then pad with it.
    CapMin,
}

/// Every Phaze-A option, named as faceswap names them (its presets' keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhazeAOptions {
    /// Output face size (a multiple of 16).
    pub output_size: usize,
    /// Shared fully-connected layer.
    pub shared_fc: SharedFc,
    /// Add the G-block.
    pub enable_gblock: bool,
    /// One fc per side (otherwise one for both).
    pub split_fc: bool,
    /// One G-block per side.
    pub split_gblock: bool,
    /// One decoder per side (otherwise one for both).
    pub split_decoders: bool,
    /// Encoder network.
    pub enc_architecture: EncoderArch,
    /// Encoder input size as a percentage of the encoder's default size.
    pub enc_scaling: u32,
    /// EfficientNetV2 width multiplier (0: the variant's).
    pub enc_width: f32,
    /// EfficientNetV2 depth multiplier (0: the variant's).
    pub enc_depth: f32,
    /// Bottleneck kind.
    pub bottleneck_type: BottleneckType,
    /// Norm before the bottleneck (none, layer, rms, instance).
    pub bottleneck_norm: NormKind,
    /// Dense bottleneck nodes.
    pub bottleneck_size: usize,
    /// Bottleneck at the end of the encoder (else at the start of each fc).
    pub bottleneck_in_encoder: bool,
    /// Dense layers per fc.
    pub fc_depth: usize,
    /// Filters of the first fc dense layer (× dims²).
    pub fc_min_filters: usize,
    /// Filters of the last fc dense layer (× dims²).
    pub fc_max_filters: usize,
    /// Width and height the fc output is reshaped to.
    pub fc_dimensions: usize,
    /// Curve of the fc node counts.
    pub fc_filter_slope: f32,
    /// Upscale method inside the fc.
    pub fc_upsampler: UpscaleMethod,
    /// Upscales inside the fc.
    pub fc_upsamples: usize,
    /// Filters of the fc upscales.
    pub fc_upsample_filters: usize,
    /// Dense layers of the G-block's fc.
    pub fc_gblock_depth: usize,
    /// First G-block fc nodes.
    pub fc_gblock_min_nodes: usize,
    /// Last G-block fc nodes.
    pub fc_gblock_max_nodes: usize,
    /// Curve of the G-block fc node counts.
    pub fc_gblock_filter_slope: f32,
    /// Decoder upscale method.
    pub dec_upscale_method: UpscaleMethod,
    /// Decoder norm.
    pub dec_norm: NormKind,
    /// Filters of the last decoder upscale.
    pub dec_min_filters: usize,
    /// Filters of the first decoder upscale.
    pub dec_max_filters: usize,
    /// How the decoder filter curve is drawn.
    pub dec_slope_mode: SlopeMode,
    /// Curve of the decoder filters.
    pub dec_filter_slope: f32,
    /// Residual blocks after each decoder upscale.
    pub dec_res_blocks: usize,
    /// Kernel of the output convs.
    pub dec_output_kernel: usize,
    /// Gaussian noise (σ 1) after each decoder upscale while training.
    pub dec_gaussian: bool,
    /// No residual blocks after the last upscale.
    pub dec_skip_last_residual: bool,
    /// fs_original: conv layers.
    pub fs_original_depth: usize,
    /// fs_original: filters of the first conv.
    pub fs_original_min_filters: usize,
    /// fs_original: most filters of any conv.
    pub fs_original_max_filters: usize,
}

impl Default for PhazeAOptions {
    /// faceswap's defaults (plugins/train/model/phaze_a_defaults.py).
    fn default() -> Self {
        PhazeAOptions {
            output_size: 128,
            shared_fc: SharedFc::None,
            enable_gblock: true,
            split_fc: true,
            split_gblock: false,
            split_decoders: false,
            enc_architecture: EncoderArch::FsOriginal,
            enc_scaling: 7,
            enc_width: 0.0,
            enc_depth: 0.0,
            bottleneck_type: BottleneckType::Dense,
            bottleneck_norm: NormKind::None,
            bottleneck_size: 1024,
            bottleneck_in_encoder: true,
            fc_depth: 1,
            fc_min_filters: 1024,
            fc_max_filters: 1024,
            fc_dimensions: 4,
            fc_filter_slope: -0.5,
            fc_upsampler: UpscaleMethod::Upsample2d,
            fc_upsamples: 1,
            fc_upsample_filters: 512,
            fc_gblock_depth: 3,
            fc_gblock_min_nodes: 512,
            fc_gblock_max_nodes: 512,
            fc_gblock_filter_slope: -0.5,
            dec_upscale_method: UpscaleMethod::Subpixel,
            dec_norm: NormKind::None,
            dec_min_filters: 64,
            dec_max_filters: 512,
            dec_slope_mode: SlopeMode::Full,
            dec_filter_slope: -0.45,
            dec_res_blocks: 1,
            dec_output_kernel: 5,
            dec_gaussian: true,
            dec_skip_last_residual: true,
            fs_original_depth: 4,
            fs_original_min_filters: 128,
            fs_original_max_filters: 1024,
        }
    }
}

/// The presets shipped with Faceswap++ (`models/presets/phaze_a/*.toml`).
pub const PRESETS: [(&str, &str); 4] = [
    (
        "dfl-saehd-df",
        include_str!("../presets/phaze_a/dfl-saehd-df.toml"),
    ),
    (
        "dfl-saehd-liae",
        include_str!("../presets/phaze_a/dfl-saehd-liae.toml"),
    ),
    ("iae", include_str!("../presets/phaze_a/iae.toml")),
    ("fspp-256", include_str!("../presets/phaze_a/fspp-256.toml")),
];

/// The TOML of the shipped preset of this name.
pub fn preset_text(name: &str) -> Result<&'static str, PhazeAError> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            PhazeAError(format!(
                "no preset named {name:?}; the presets are {}, or give a preset file's path",
                names.join(", ")
            ))
        })
}

/// Phaze-A options that cannot build a model.
#[derive(Debug, thiserror::Error)]
#[error("Phaze-A options: {0}")]
pub struct PhazeAError(pub String);

impl PhazeAOptions {
    /// Parses a preset file's TOML (unknown keys are refused, missing ones take faceswap's
    /// defaults) and checks it.
    pub fn from_toml(text: &str) -> Result<PhazeAOptions, PhazeAError> {
        let o: PhazeAOptions = toml::from_str(text).map_err(|e| PhazeAError(e.to_string()))?;
        o.check()?;
        Ok(o)
    }

    /// The shipped preset of this name.
    pub fn preset(name: &str) -> Result<PhazeAOptions, PhazeAError> {
        Self::from_toml(preset_text(name)?)
    }

    /// The options as preset TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The same model at another output size; the encoder keeps its input size, as in faceswap
    /// (`enc_scaling` is its own option).
    pub fn at_resolution(&self, resolution: usize) -> Result<PhazeAOptions, PhazeAError> {
        let o = PhazeAOptions {
            output_size: resolution,
            ..self.clone()
        };
        o.check()?;
        Ok(o)
    }

    /// Encoder input size: `enc_scaling`% of the default, down to a multiple of 16, at least 32.
    pub fn input_size(&self) -> usize {
        let size = self.enc_architecture.default_size() as f64 * self.enc_scaling as f64 / 100.0;
        (((size / 16.0).floor() * 16.0) as usize).max(32)
    }

    /// Width and height of the fc output (the decoder's input).
    pub fn fc_output_dims(&self) -> usize {
        self.fc_dimensions << self.fc_upsamples
    }

    /// Upscales in each decoder.
    pub fn decoder_upscales(&self) -> usize {
        (self.output_size / self.fc_output_dims().max(1)).trailing_zeros() as usize
    }

    /// Refuses combinations that cannot build, naming the option to change.
    pub fn check(&self) -> Result<(), PhazeAError> {
        let bad = |m: String| Err(PhazeAError(m));
        if self.output_size < 32 || !self.output_size.is_multiple_of(16) {
            return bad(format!(
                "output_size {} must be a multiple of 16, at least 32",
                self.output_size
            ));
        }
        let dims = self.fc_output_dims();
        if dims == 0 || !self.output_size.is_multiple_of(dims) {
            return bad(format!(
                "output_size {} is not a multiple of the fc output ({} = fc_dimensions {} × 2^fc_upsamples {})",
                self.output_size, dims, self.fc_dimensions, self.fc_upsamples
            ));
        }
        let ratio = self.output_size / dims;
        if !ratio.is_power_of_two() || ratio < 2 {
            return bad(format!(
                "output_size {} over the fc output {dims} must be a power of two of at least 2; change fc_dimensions or fc_upsamples",
                self.output_size
            ));
        }
        if self.fc_depth == 0 || (self.enable_gblock && self.fc_gblock_depth == 0) {
            return bad("fc_depth and fc_gblock_depth must be at least 1".into());
        }
        let last = *curve(
            self.fc_min_filters * self.fc_dimensions.pow(2),
            self.fc_max_filters * self.fc_dimensions.pow(2),
            self.fc_depth,
            self.fc_filter_slope,
            SlopeMode::Full,
        )
        .last()
        .unwrap_or(&0);
        if last == 0 || !last.is_multiple_of(self.fc_dimensions.pow(2)) {
            return bad(format!(
                "the last fc layer's {last} nodes do not reshape to {0}×{0}; set fc_min_filters = fc_max_filters or fc_depth > 1",
                self.fc_dimensions
            ));
        }
        if self.bottleneck_norm == NormKind::Batch {
            return bad("bottleneck_norm may be none, layer, rms or instance".into());
        }
        if self.dec_output_kernel.is_multiple_of(2) {
            return bad(format!(
                "dec_output_kernel {} must be odd",
                self.dec_output_kernel
            ));
        }
        if self.fs_original_depth == 0 && self.enc_architecture == EncoderArch::FsOriginal {
            return bad("fs_original_depth must be at least 1".into());
        }
        if self.dec_max_filters < 8 || self.dec_min_filters < 8 {
            return bad("dec_min_filters and dec_max_filters must be at least 8".into());
        }
        Ok(())
    }

    /// Builds the networks on `device` (call [`Self::check`] first; presets are checked).
    pub fn init(&self, device: &Device) -> PhazeA {
        let (encoder, (enc_ch, enc_hw)) = PaEncoder::new(self, device);
        let fc = |device: &Device| FullyConnected::new(self, enc_ch, enc_hw, false, device);
        let (fc_a, fc_out) = fc(device);
        let fc_b = self.split_fc.then(|| fc(device).0);
        let fc_shared = (self.shared_fc == SharedFc::Full).then(|| fc(device).0);
        let inter_ch = if self.shared_fc == SharedFc::None {
            fc_out
        } else {
            2 * fc_out
        };
        let (fc_gblock, gblock_a, gblock_b) = if self.enable_gblock {
            let (f, style) = FullyConnected::new(self, enc_ch, enc_hw, true, device);
            let g = |device: &Device| GBlock::new(inter_ch, style, device);
            (
                Some(f),
                Some(g(device)),
                self.split_gblock.then(|| g(device)),
            )
        } else {
            (None, None, None)
        };
        let decoder = |device: &Device| PaDecoder::new(self, inter_ch, device);
        PhazeA {
            encoder,
            fc_a,
            fc_b,
            fc_shared,
            half_shared: self.shared_fc == SharedFc::Half,
            fc_gblock,
            gblock_a,
            gblock_b,
            decoder_a: decoder(device),
            decoder_b: self.split_decoders.then(|| decoder(device)),
        }
    }
}

impl PhazeAOptions {
    /// Reads a faceswap Phaze-A preset (the GUI's JSON, `lib/gui/.cache/presets/train/*.json`,
    /// also Faceswap++'s): shared keys are taken, faceswap-only keys that do not shape the
    /// network are dropped with a note each, and values Faceswap++ cannot build are refused by
    /// name. Returns the options and the notes.
    pub fn from_faceswap_json(text: &str) -> Result<(PhazeAOptions, Vec<String>), PhazeAError> {
        use serde_json::Value;
        let root: serde_json::Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| PhazeAError(format!("not a faceswap preset: {e}")))?;
        if let Some(section) = root.get("__section").and_then(Value::as_str)
            && section != "train|model|phaze_a"
        {
            return Err(PhazeAError(format!(
                "this preset is for {section:?}, not Phaze-A (train|model|phaze_a)"
            )));
        }
        let mut notes = Vec::new();
        let mut kept = serde_json::Map::new();
        for (key, value) in root {
            let truthy = match &value {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|v| v != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => false,
            };
            match key.as_str() {
                "__filetype" | "__section" => {}
                k if k.starts_with("mobilenet_") => {}
                // Faceswap++ (aopsr) keys for its DFL-style decoder, unused by "original".
                "d_dims" | "dec_filters" => {}
                "dec_type" if value.as_str() == Some("original") => {}
                "enc_load_weights" => {
                    if truthy {
                        notes.push(
                            "enc_load_weights: no ImageNet weights here; the encoder starts from scratch".into(),
                        );
                    }
                }
                "freeze_layers" | "load_layers" => notes.push(format!(
                    "{key} ({value}): choose parts with train --pretrained/--load-parts/--freeze-steps"
                )),
                "fc_dropout" | "fc_gblock_dropout" => {
                    if truthy {
                        notes.push(format!("{key} {value}: dropout is not applied"));
                    }
                }
                "dec_upscales_in_fc" | "fs_original_use_alt" | "dec_type" => {
                    if truthy {
                        return Err(PhazeAError(format!(
                            "{key} = {value} is not supported; set it to {} in faceswap's preset or drop it",
                            if key == "dec_type" { "\"original\"" } else if key == "dec_upscales_in_fc" { "0" } else { "false" }
                        )));
                    }
                }
                _ => {
                    kept.insert(key, value);
                }
            }
        }
        let opts: PhazeAOptions =
            serde_json::from_value(Value::Object(kept)).map_err(|e| PhazeAError(e.to_string()))?;
        opts.check()?;
        Ok((opts, notes))
    }
}

/// faceswap's `_get_curve`: `points` values from `start` to `end`, rounded down to 8.
pub fn curve(start: usize, end: usize, points: usize, scale: f32, mode: SlopeMode) -> Vec<usize> {
    let scale = f64::from(scale.clamp(-0.99, 0.99));
    let round8 = |y: f64| ((y / 8.0).floor() * 8.0).max(0.0) as usize;
    match mode {
        SlopeMode::Full => (0..points)
            .map(|i| {
                let x = if points > 1 {
                    i as f64 / (points - 1) as f64
                } else {
                    0.0
                };
                let y = (x - x * scale) / (scale - x.abs() * 2.0 * scale + 1.0);
                round8(y * (end as f64 - start as f64) + start as f64)
            })
            .collect(),
        SlopeMode::CapMax | SlopeMode::CapMin => {
            let factor = 1.0 - scale.abs();
            let mut ys = vec![start];
            for _ in 1..points {
                let prev = *ys.last().unwrap_or(&start) as f64;
                let next = end.max(round8(prev * factor));
                ys.push(next);
                if next == end {
                    break;
                }
            }
            let pad = points.saturating_sub(ys.len());
            if mode == SlopeMode::CapMax {
                let mut out = vec![start; pad];
                out.extend(ys);
                out
            } else {
                ys.extend(std::iter::repeat_n(end, pad));
                ys
            }
        }
    }
}

/// Bilinear resize `[B, C, H, W]` → `[B, C, h, w]`, half-pixel centres, edges clamped.
fn resize(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    if conv::on_flex(&x) {
        // burn-flex's own kernel: 3–6× faster than the gathers on the CPU (measured fwd + bwd).
        interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size(size),
        )
    } else {
        resize_separable(x, size)
    }
}

/// [`resize`] as two separable gathers and blends, whose gradient every backend has: burn's
/// cubecl backends (cuda, vulkan, wgpu) have no bilinear backward and panic in training.
fn resize_separable(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let x = lerp_along(x, 2, size[0]);
    lerp_along(x, 3, size[1])
}

/// Linear interpolation of axis `dim` (2 or 3) from its length to `out` samples.
fn lerp_along(x: Tensor<4>, dim: usize, out: usize) -> Tensor<4> {
    let n = x.dims()[dim];
    if n == out || n == 0 {
        return x;
    }
    let scale = n as f64 / out as f64;
    let mut lo = Vec::with_capacity(out);
    let mut hi = Vec::with_capacity(out);
    let mut weight = Vec::with_capacity(out);
    for i in 0..out {
        let src = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n - 1) as f64);
        let i0 = src.floor() as usize;
        lo.push(i0 as i64);
        hi.push((i0 + 1).min(n - 1) as i64);
        weight.push((src - i0 as f64) as f32);
    }
    let device = x.device();
    let mut shape = [1; 4];
    shape[dim] = out;
    // Made in f32; the blend stays in the compute precision (half under mixed precision).
    let weight = Tensor::<1>::from_floats(weight.as_slice(), &device)
        .reshape(shape)
        .cast(x.dtype());
    let a = x
        .clone()
        .select(dim, Tensor::<1, Int>::from_ints(lo.as_slice(), &device));
    let b = x.select(dim, Tensor::<1, Int>::from_ints(hi.as_slice(), &device));
    a.clone() + (b - a) * weight
}

fn gaussian_noise(x: Tensor<4>) -> Tensor<4> {
    // Drawn from the device's generator, which the trainer seeds per step.
    let noise = Tensor::<4>::random(x.shape(), Distribution::Normal(0.0, 1.0), &x.device());
    // Drawn in f32; the sum stays in the compute precision (half under mixed precision).
    let dtype = x.dtype();
    x + noise.cast(dtype)
}

/// A norm over a feature map `[B, C, H, W]`.
#[derive(Module, Debug)]
enum FeatureNorm {
    Layer(LayerNorm),
    Rms(RmsNorm),
    Instance(InstanceNorm),
    Batch(BatchNorm),
}

impl FeatureNorm {
    fn new(kind: NormKind, c: usize, device: &Device) -> Option<FeatureNorm> {
        Some(match kind {
            NormKind::None => return None,
            NormKind::Layer => {
                FeatureNorm::Layer(LayerNormConfig::new(c).with_epsilon(1e-3).init(device))
            }
            NormKind::Rms => FeatureNorm::Rms(RmsNormConfig::new(c).init(device)),
            NormKind::Instance => {
                FeatureNorm::Instance(InstanceNormConfig::new(c).with_epsilon(1e-3).init(device))
            }
            NormKind::Batch => {
                FeatureNorm::Batch(BatchNormConfig::new(c).with_epsilon(1e-3).init(device))
            }
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Keras normalises the last (channel) axis of NHWC: move channels last and back.
        match self {
            FeatureNorm::Layer(n) => n.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]),
            FeatureNorm::Rms(n) => n.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]),
            FeatureNorm::Instance(n) => n.forward(x),
            FeatureNorm::Batch(n) => batch_norm(n, x),
        }
    }
}

/// Batch norm computed in f32 whatever the compute precision (mixed precision keeps its
/// parameters and running statistics in f32).
fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let dtype = x.dtype();
    if dtype == burn::tensor::DType::F32 {
        return bn.forward(x);
    }
    bn.forward(x.cast(burn::tensor::FloatDType::F32))
        .cast(dtype)
}

fn apply_norm(norm: &Option<FeatureNorm>, x: Tensor<4>) -> Tensor<4> {
    match norm {
        Some(n) => n.forward(x),
        None => x,
    }
}

/// Conv without bias + batch norm (EfficientNet's building block).
#[derive(Module, Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(k: usize, i: usize, o: usize, stride: usize, groups: usize, device: &Device) -> Self {
        ConvBn {
            conv: same_conv(k, i, o, stride, groups, false, device),
            bn: BatchNormConfig::new(o).with_epsilon(1e-3).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv::forward(&self.conv, x))
    }
}

#[derive(Module, Debug)]
struct SqueezeExcite {
    reduce: Conv2d,
    expand: Conv2d,
}

impl SqueezeExcite {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, C, H, W] → [B, C, 1, 1] gates
        let s = x.clone().mean_dim(2).mean_dim(3);
        let s = sigmoid(conv::forward(
            &self.expand,
            silu(conv::forward(&self.reduce, s)),
        ));
        x * s
    }
}

/// One (Fused-)MBConv block of EfficientNetV2.
#[derive(Module, Debug)]
struct EffBlock {
    expand: Option<ConvBn>,
    depthwise: Option<ConvBn>,
    se: Option<SqueezeExcite>,
    project: ConvBn,
    project_act: bool,
    residual: bool,
}

/// One stage of Keras' EfficientNetV2 block table.
struct StageArgs {
    kernel: usize,
    repeats: usize,
    input: usize,
    output: usize,
    expand: usize,
    se: f32,
    stride: usize,
    fused: bool,
}

/// keras/src/applications/efficientnet_v2.py `DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"]` (B1–B3
/// scale it by their width and depth coefficients).
const V2_BASE_STAGES: [StageArgs; 6] = [
    // kernel, repeats, input, output, expand, se, stride, fused
    stage(3, 1, 32, 16, 1, 0.0, 1, true),
    stage(3, 2, 16, 32, 4, 0.0, 2, true),
    stage(3, 2, 32, 48, 4, 0.0, 2, true),
    stage(3, 3, 48, 96, 4, 0.25, 2, false),
    stage(3, 5, 96, 112, 6, 0.25, 1, false),
    stage(3, 8, 112, 192, 6, 0.25, 2, false),
];

// Mirrors one row of Keras' table; a struct literal per row would hide the table.
#[allow(clippy::too_many_arguments)]
const fn stage(
    kernel: usize,
    repeats: usize,
    input: usize,
    output: usize,
    expand: usize,
    se: f32,
    stride: usize,
    fused: bool,
) -> StageArgs {
    StageArgs {
        kernel,
        repeats,
        input,
        output,
        expand,
        se,
        stride,
        fused,
    }
}

/// Keras `round_filters`: scale by width, round to a multiple of 8, never below 90%.
fn round_filters(filters: usize, width: f32) -> usize {
    let f = filters as f32 * width;
    let mut new = 8usize.max(((f + 4.0) as usize / 8) * 8);
    if (new as f32) < 0.9 * f {
        new += 8;
    }
    new
}

impl EffBlock {
    fn new(s: &StageArgs, i: usize, o: usize, stride: usize, device: &Device) -> Self {
        let k = s.kernel;
        let mid = i * s.expand;
        let se = (s.se > 0.0).then(|| {
            let r = 1usize.max((i as f32 * s.se) as usize);
            SqueezeExcite {
                reduce: same_conv(1, mid, r, 1, 1, true, device),
                expand: same_conv(1, r, mid, 1, 1, true, device),
            }
        });
        let (expand, depthwise, project) = if s.fused {
            if s.expand != 1 {
                (
                    Some(ConvBn::new(k, i, mid, stride, 1, device)),
                    None,
                    ConvBn::new(1, mid, o, 1, 1, device),
                )
            } else {
                (None, None, ConvBn::new(k, i, o, stride, 1, device))
            }
        } else {
            (
                (s.expand != 1).then(|| ConvBn::new(1, i, mid, 1, 1, device)),
                Some(ConvBn::new(k, mid, mid, stride, mid, device)),
                ConvBn::new(1, mid, o, 1, 1, device),
            )
        };
        EffBlock {
            expand,
            depthwise,
            se,
            project,
            project_act: s.fused && s.expand == 1,
            residual: stride == 1 && i == o,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, I, H, W] → [B, O, H/s, W/s]
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = silu(e.forward(y));
        }
        if let Some(d) = &self.depthwise {
            y = silu(d.forward(y));
        }
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = self.project.forward(y);
        if self.project_act {
            y = silu(y);
        }
        if self.residual { y + x } else { y }
    }
}

/// EfficientNetV2 without its classifier head (Keras `include_top=False`).
#[derive(Module, Debug)]
struct EfficientNetV2 {
    stem: ConvBn,
    blocks: Vec<EffBlock>,
    top: ConvBn,
}

impl EfficientNetV2 {
    fn new(width: f32, depth: f32, device: &Device) -> (Self, usize) {
        let stem_ch = round_filters(V2_BASE_STAGES[0].input, width);
        let mut blocks = Vec::new();
        let mut last = stem_ch;
        for s in &V2_BASE_STAGES {
            let out = round_filters(s.output, width);
            let repeats = (depth * s.repeats as f32).ceil() as usize;
            for r in 0..repeats {
                let stride = if r == 0 { s.stride } else { 1 };
                blocks.push(EffBlock::new(s, last, out, stride, device));
                last = out;
            }
        }
        let top_ch = round_filters(1280, width);
        (
            EfficientNetV2 {
                stem: ConvBn::new(3, 3, stem_ch, 2, 1, device),
                blocks,
                top: ConvBn::new(1, last, top_ch, 1, 1, device),
            },
            top_ch,
        )
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, 3, S, S] in [-1, 1] → [B, 1280·w, S/32, S/32]
        let mut x = silu(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        silu(self.top.forward(x))
    }
}

/// faceswap's "original" encoder: 5×5 stride-2 convs + LReLU 0.1.
#[derive(Module, Debug)]
struct FsOriginal {
    convs: Vec<Conv2d>,
}

// One per model, built once; burn's Module derive does not take boxed fields.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
enum EncoderBody {
    FsOriginal(FsOriginal),
    EfficientNetV2(EfficientNetV2),
}

/// Flatten/pool (after an optional norm) a feature map into a vector.
#[derive(Module, Debug)]
struct Bottleneck {
    norm: Option<FeatureNorm>,
    dense: Option<Linear>,
    max_pool: bool,
}

impl Bottleneck {
    fn new(o: &PhazeAOptions, ch: usize, hw: usize, device: &Device) -> (Self, usize) {
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

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
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
struct PaEncoder {
    body: EncoderBody,
    bottleneck: Option<Bottleneck>,
    input_size: usize,
}

impl PaEncoder {
    /// The encoder and the channels and width of its output (a bottleneck here makes it
    /// `[N, 1, 1]`).
    fn new(o: &PhazeAOptions, device: &Device) -> (Self, (usize, usize)) {
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

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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

/// A 2× upscale.
// A handful per model, built once; burn's Module derive does not take boxed fields.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
enum Upscaler {
    Subpixel(SubpixelUp),
    ResizeImages(ResizeConvUp),
    Transpose(TransposeUp),
    Bilinear(BilinearUp),
}

#[derive(Module, Debug)]
struct SubpixelUp {
    conv: Conv2d,
    shuffle: PixelShuffle,
}

#[derive(Module, Debug)]
struct ResizeConvUp {
    conv: Conv2d,
    transpose: ConvTranspose2d,
}

#[derive(Module, Debug)]
struct TransposeUp {
    transpose: ConvTranspose2d,
}

#[derive(Module, Debug)]
struct BilinearUp {
    factor: usize,
}

fn transpose_conv(i: usize, o: usize, device: &Device) -> ConvTranspose2d {
    // Keras "same" 3×3 stride 2: output exactly twice the input.
    ConvTranspose2dConfig::new([i, o], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .with_padding_out([1, 1])
        .init(device)
}

impl Upscaler {
    /// The upscaler and its output channels.
    fn new(method: UpscaleMethod, i: usize, o: usize, device: &Device) -> (Upscaler, usize) {
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

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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

/// A fully-connected "inter": bottleneck (unless in the encoder), dense layers, then (not for
/// the G-block's) reshape to a feature map and upscales.
#[derive(Module, Debug)]
struct FullyConnected {
    bottleneck: Option<Bottleneck>,
    denses: Vec<Linear>,
    ups: Vec<Upscaler>,
    lrelu_after: bool,
    dims: usize,
}

impl FullyConnected {
    /// The fc and its output channels (the G-block's: its vector's length).
    fn new(
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

    fn forward_flat(&self, enc: Tensor<4>) -> Tensor<2> {
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

    fn forward_map(&self, enc: Tensor<4>) -> Tensor<4> {
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
struct GLevel {
    beta: Linear,
    gamma: Linear,
    noise_conv: Conv2d,
    conv: Option<Conv2d>,
}

/// faceswap's G-block (after AdaIN StyleGAN): the side's feature map restyled by a vector the
/// G-block fc draws from the encoding.
#[derive(Module, Debug)]
struct GBlock {
    style: Vec<Linear>,
    conv_in: Conv2d,
    levels: Vec<GLevel>,
}

impl GBlock {
    fn new(ch: usize, style_in: usize, device: &Device) -> Self {
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

    fn forward(&self, x: Tensor<4>, style: Tensor<2>, noise: bool) -> Tensor<4> {
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
fn adain(x: Tensor<4>, beta: Tensor<4>, gamma: Tensor<4>) -> Tensor<4> {
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

/// A Phaze-A decoder: upscales (+ norm, residual blocks) to a face and, without residual
/// blocks, to its mask.
#[derive(Module, Debug)]
struct PaDecoder {
    ups: Vec<Upscaler>,
    norms: Vec<Option<FeatureNorm>>,
    res: Vec<Vec<ResBlock>>,
    mask_ups: Vec<Upscaler>,
    mask_norms: Vec<Option<FeatureNorm>>,
    out: Conv2d,
    out_mask: Conv2d,
    gaussian: bool,
}

impl PaDecoder {
    fn new(o: &PhazeAOptions, input: usize, device: &Device) -> Self {
        let filters = curve(
            o.dec_max_filters,
            o.dec_min_filters,
            o.decoder_upscales(),
            o.dec_filter_slope,
            o.dec_slope_mode,
        );
        // The face and mask branches upscale alike; `outs` are the channels after each upscale.
        let chain = |device: &Device| {
            let mut c = input;
            let (mut ups, mut norms, mut outs) = (Vec::new(), Vec::new(), Vec::new());
            for &f in &filters {
                let (u, out) = Upscaler::new(o.dec_upscale_method, c, f.max(8), device);
                ups.push(u);
                norms.push(FeatureNorm::new(o.dec_norm, out, device));
                outs.push(out);
                c = out;
            }
            (ups, norms, outs)
        };
        let (ups, norms, outs) = chain(device);
        let (mask_ups, mask_norms, _) = chain(device);
        let last = outs.len().saturating_sub(1);
        let res = outs
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let blocks = if i == last && o.dec_skip_last_residual {
                    0
                } else {
                    o.dec_res_blocks
                };
                (0..blocks).map(|_| ResBlock::new(c, device)).collect()
            })
            .collect();
        let out_ch = outs.last().copied().unwrap_or(input);
        let k = o.dec_output_kernel;
        PaDecoder {
            ups,
            norms,
            res,
            mask_ups,
            mask_norms,
            out: same_conv(k, out_ch, 3, 1, 1, true, device),
            out_mask: same_conv(k, out_ch, 1, 1, 1, true, device),
            gaussian: o.dec_gaussian,
        }
    }

    fn forward(&self, z: Tensor<4>, noise: bool) -> (Tensor<4>, Tensor<4>) {
        // [B, C, d, d] → face [B, 3, R, R], mask [B, 1, R, R]
        let mut x = z.clone();
        for ((u, norm), res) in self.ups.iter().zip(&self.norms).zip(&self.res) {
            x = u.forward(x);
            if noise && self.gaussian {
                x = gaussian_noise(x);
            }
            x = apply_norm(norm, x);
            if res.is_empty() {
                x = leaky_relu(x, 0.1);
            } else {
                x = leaky_relu(x, 0.2);
                for r in res {
                    x = r.forward(x);
                }
            }
        }
        let mut m = z;
        for (u, norm) in self.mask_ups.iter().zip(&self.mask_norms) {
            m = leaky_relu(apply_norm(norm, u.forward(m)), 0.1);
        }
        (
            sigmoid(conv::forward(&self.out, x)),
            sigmoid(conv::forward(&self.out_mask, m)),
        )
    }
}

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
mod tests {
    use super::*;

    #[test]
    fn separable_resize_equals_burns_bilinear_forward_and_gradient() {
        let device = Device::flex().autodiff();
        // Up 2×, down, odd ratios, one axis unchanged, and a single row.
        for (from, to) in [
            ([4, 5], [8, 10]),
            ([8, 8], [3, 5]),
            ([5, 7], [7, 7]),
            ([1, 6], [3, 4]),
        ] {
            let values: Vec<f32> = (0..2 * 3 * from[0] * from[1])
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let input = || {
                Tensor::<1>::from_floats(values.as_slice(), &device)
                    .reshape([2, 3, from[0], from[1]])
                    .require_grad()
            };
            // [2, 3, h, w]: a weighting, so that each output element's gradient differs.
            let weights = Tensor::<1>::from_floats(
                (0..2 * 3 * to[0] * to[1])
                    .map(|i| 1.0 + (i as f32 * 0.11).cos())
                    .collect::<Vec<_>>()
                    .as_slice(),
                &device,
            )
            .reshape([2, 3, to[0], to[1]]);
            let (ours_in, theirs_in) = (input(), input());
            // Else `resize` below would be the gathers too, and the check would prove nothing.
            assert!(conv::on_flex(&theirs_in) && conv::on_flex(&theirs_in.clone().inner()));
            let ours = resize_separable(ours_in.clone(), to);
            // On burn-flex `resize` is burn's own bilinear kernel: the reference.
            let theirs = resize(theirs_in.clone(), to);
            assert_eq!(ours.dims(), [2, 3, to[0], to[1]]);
            let max_diff =
                |a: Tensor<4>, b: Tensor<4>| -> f32 { (a - b).abs().max().into_scalar::<f32>() };
            let forward = max_diff(ours.clone(), theirs.clone());
            assert!(
                forward < 1e-5,
                "{from:?} → {to:?}: forward differs by {forward}"
            );
            let g_ours = (ours * weights.clone()).sum().backward();
            let g_theirs = (theirs * weights).sum().backward();
            let (Some(a), Some(b)) = (ours_in.grad(&g_ours), theirs_in.grad(&g_theirs)) else {
                panic!("{from:?} → {to:?}: no input gradient");
            };
            let backward = max_diff(a, b);
            assert!(
                backward < 1e-4,
                "{from:?} → {to:?}: gradient differs by {backward}"
            );
        }
    }

    #[test]
    fn curves_match_faceswap() {
        // Expected values from faceswap's `_get_curve` formula evaluated in Python.
        assert_eq!(
            curve(512, 128, 3, -0.33, SlopeMode::Full),
            vec![512, 256, 128]
        );
        assert_eq!(curve(16384, 16384, 1, -0.5, SlopeMode::Full), vec![16384]);
        assert_eq!(
            curve(512, 64, 4, -0.45, SlopeMode::Full),
            vec![512, 256, 128, 64]
        );
        assert_eq!(
            curve(512, 64, 6, -0.45, SlopeMode::Full),
            vec![512, 328, 224, 152, 96, 64]
        );
        assert_eq!(
            curve(512, 64, 5, 0.5, SlopeMode::CapMin),
            vec![512, 256, 128, 64, 64]
        );
        assert_eq!(
            curve(512, 64, 5, 0.5, SlopeMode::CapMax),
            vec![512, 512, 256, 128, 64]
        );
    }

    #[test]
    fn efficientnet_v2_b0_has_keras_parameter_count() {
        // burn draws from one generator per process; keep other tests' draws out of ours.
        let _draws = crate::weights::random_draws();
        // Keras EfficientNetV2B0(include_top=False) holds 5,919,312 weights (7,200,312 with its
        // 1,281,000-weight top); burn counts batch-norm moving statistics as Keras does.
        let (net, ch) = EfficientNetV2::new(1.0, 1.0, &Device::flex());
        assert_eq!(ch, 1280);
        println!("EfficientNetV2-B0: {} weights", net.num_params());
        assert_eq!(net.num_params(), 5_919_312);
    }
}

#[cfg(test)]
pub(crate) mod build_tests {
    use super::*;
    use crate::SideBatch;
    use crate::face_model::ModelOptions;
    use crate::train::{FaceTrainer, TrainerConfig};

    pub(crate) fn batch(res: usize, seed: f32, device: &Device) -> SideBatch {
        // Drawn under the trainers' lock: tests comparing seeded runs share the generator.
        let _draws = crate::weights::random_draws();
        let img = Tensor::<4>::random([2, 3, res, res], Distribution::Uniform(0.0, 1.0), device)
            .mul_scalar(0.5)
            .add_scalar(seed * 0.25);
        SideBatch::unmasked(img)
    }

    /// Builds `o`, checks every output's shape, takes one training step and returns the
    /// parameter count.
    fn build_and_step(name: &str, o: &PhazeAOptions) -> usize {
        build_and_step_in(name, o, crate::train::Precision::F32)
    }

    fn build_and_step_in(
        name: &str,
        o: &PhazeAOptions,
        precision: crate::train::Precision,
    ) -> usize {
        let res = o.output_size;
        let device = Device::flex().autodiff();
        let mut t = FaceTrainer::new(
            ModelOptions::PhazeA(o.clone()),
            &device,
            TrainerConfig {
                precision,
                ..TrainerConfig::default()
            },
        );
        let crate::face_model::FaceModel::PhazeA(model) = t.model() else {
            panic!("not a Phaze-A model");
        };
        let params = model.num_params();
        let x = Tensor::<4>::zeros([1, 3, res, res], &device);
        let out = model.forward(x.clone(), x.clone());
        for (img, mask) in [&out.a, &out.b, &out.b_to_a, &out.a_to_b] {
            assert_eq!(img.dims(), [1, 3, res, res], "{name}");
            assert_eq!(mask.dims(), [1, 1, res, res], "{name}");
        }
        let swap = model.swap(x);
        assert_eq!(swap.face.dims(), [1, 3, res, res], "{name}");
        let before = t.weight_values();
        let (a, b) = (batch(res, 0.0, &device), batch(res, 1.0, &device));
        // Mixed precision skips steps whose gradients overflow, halving the loss scale (batch
        // norms' running statistics still move in the forward pass, as in Keras).
        let mut stats = t.train_step(&a, &b);
        while stats.loss_scale.is_some_and(|(_, overflowed)| overflowed) {
            assert!(t.step() < 8, "{name}: every step overflowed");
            stats = t.train_step(&a, &b);
        }
        assert!(
            stats.loss_a.is_finite() && stats.loss_b.is_finite(),
            "{name}: {stats:?}"
        );
        let after = t.weight_values();
        assert_ne!(before, after, "{name}: the step changed no weight");
        println!(
            "Phaze-A {name} {res}px (encoder input {}): {params} parameters, step loss {:.4}/{:.4}",
            o.input_size(),
            stats.loss_a,
            stats.loss_b
        );
        params
    }

    #[test]
    fn every_preset_builds_at_64_px_and_trains_a_step() {
        // The trainer holds the process's random-draw lock itself.
        for (name, _) in PRESETS {
            let o = PhazeAOptions::preset(name)
                .unwrap()
                .at_resolution(64)
                .unwrap();
            build_and_step(name, &o);
        }
    }

    /// Small widths so a sample of option combinations builds and steps quickly.
    pub(crate) fn small() -> PhazeAOptions {
        PhazeAOptions {
            output_size: 64,
            enc_scaling: 7,
            bottleneck_size: 64,
            fc_min_filters: 32,
            fc_max_filters: 32,
            fc_upsample_filters: 32,
            fc_gblock_min_nodes: 32,
            fc_gblock_max_nodes: 32,
            dec_min_filters: 16,
            dec_max_filters: 64,
            fs_original_min_filters: 16,
            fs_original_max_filters: 64,
            ..PhazeAOptions::default()
        }
    }

    #[test]
    fn option_combinations_build_and_train_a_step() {
        let combos: Vec<(&str, PhazeAOptions)> = vec![
            ("faceswap defaults (small)", small()),
            (
                "avg-pool bottleneck, layer norm, resize-images decoder, batch norm",
                PhazeAOptions {
                    bottleneck_type: BottleneckType::AveragePooling,
                    bottleneck_norm: NormKind::Layer,
                    bottleneck_in_encoder: false,
                    dec_upscale_method: UpscaleMethod::ResizeImages,
                    dec_norm: NormKind::Batch,
                    ..small()
                },
            ),
            (
                "max-pool, instance norm, transpose decoder, split G-block, split decoders",
                PhazeAOptions {
                    bottleneck_type: BottleneckType::MaxPooling,
                    bottleneck_norm: NormKind::Instance,
                    dec_upscale_method: UpscaleMethod::Transpose,
                    dec_norm: NormKind::Instance,
                    split_gblock: true,
                    split_decoders: true,
                    ..small()
                },
            ),
            (
                "shared fc full, no G-block, fc depth 3, two subpixel fc upsamples, cap-min",
                PhazeAOptions {
                    shared_fc: SharedFc::Full,
                    enable_gblock: false,
                    fc_depth: 3,
                    fc_min_filters: 16,
                    fc_dimensions: 4,
                    fc_upsampler: UpscaleMethod::Subpixel,
                    fc_upsamples: 2,
                    dec_slope_mode: SlopeMode::CapMin,
                    dec_res_blocks: 2,
                    dec_skip_last_residual: false,
                    ..small()
                },
            ),
            (
                "EfficientNetV2-B1 at half width, rms bottleneck, upsample2d decoder, 128 px",
                PhazeAOptions {
                    output_size: 128,
                    enc_architecture: EncoderArch::EfficientNetV2B1,
                    enc_scaling: 15,
                    enc_width: 0.5,
                    enc_depth: 0.5,
                    bottleneck_norm: NormKind::Rms,
                    dec_upscale_method: UpscaleMethod::Upsample2d,
                    dec_norm: NormKind::Layer,
                    shared_fc: SharedFc::Half,
                    ..small()
                },
            ),
        ];
        for (name, o) in &combos {
            o.check().unwrap();
            build_and_step(name, o);
        }
    }

    #[test]
    fn every_norm_and_upscale_trains_in_mixed_precision() {
        use crate::train::Precision;
        let combos = [
            (
                "EfficientNetV2 (batch norm, squeeze-excite), G-block noise, rms bottleneck",
                PhazeAOptions {
                    output_size: 64,
                    enc_architecture: EncoderArch::EfficientNetV2B0,
                    bottleneck_norm: NormKind::Rms,
                    enc_scaling: 15,
                    enc_width: 0.5,
                    enc_depth: 0.5,
                    ..small()
                },
            ),
            (
                "layer/instance/batch norms, resize-images and transpose upscales",
                PhazeAOptions {
                    bottleneck_norm: NormKind::Layer,
                    bottleneck_type: BottleneckType::MaxPooling,
                    dec_norm: NormKind::Batch,
                    dec_upscale_method: UpscaleMethod::ResizeImages,
                    fc_upsampler: UpscaleMethod::Transpose,
                    ..small()
                },
            ),
            (
                "instance norm, bilinear upscales, decoder noise",
                PhazeAOptions {
                    bottleneck_norm: NormKind::Instance,
                    bottleneck_in_encoder: false,
                    dec_norm: NormKind::Instance,
                    dec_upscale_method: UpscaleMethod::Upsample2d,
                    dec_gaussian: true,
                    ..small()
                },
            ),
        ];
        for precision in [Precision::Bf16, Precision::F16] {
            for (name, o) in &combos {
                o.check().unwrap();
                build_and_step_in(&format!("{name} ({precision:?})"), o, precision);
            }
        }
    }

    #[test]
    fn presets_parse_and_bad_options_are_named() {
        for (name, _) in PRESETS {
            let o = PhazeAOptions::preset(name).unwrap();
            assert_eq!(PhazeAOptions::from_toml(&o.to_toml()).unwrap(), o, "{name}");
        }
        let o = PhazeAOptions::preset("fspp-256").unwrap();
        assert_eq!((o.output_size, o.input_size()), (256, 128));
        assert_eq!(o.at_resolution(128).unwrap().input_size(), 128);
        let err = PhazeAOptions::from_toml("output_size = 128\nfc_dimension = 4\n").unwrap_err();
        assert!(err.to_string().contains("fc_dimension"), "{err}");
        let err = PhazeAOptions::from_toml("output_size = 96\n").unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
        assert!(
            PhazeAOptions::preset("nope")
                .unwrap_err()
                .to_string()
                .contains("fspp-256")
        );
    }
}

#[cfg(test)]
mod faceswap_preset_tests {
    use super::*;

    /// faceswap's `model_phaze_a_dfl-saehd-df_preset.json` values, as its GUI saves them.
    const FACESWAP_DF: &str = r#"{
      "output_size": 128, "shared_fc": "none", "enable_gblock": false, "split_fc": false,
      "split_gblock": false, "split_decoders": true, "enc_architecture": "fs_original",
      "enc_scaling": 13, "enc_load_weights": false, "bottleneck_type": "dense",
      "bottleneck_norm": "none", "bottleneck_size": 256, "bottleneck_in_encoder": false,
      "fc_depth": 1, "fc_min_filters": 256, "fc_max_filters": 256, "fc_dimensions": 8,
      "fc_filter_slope": -0.5, "fc_dropout": 0.0, "fc_upsampler": "subpixel",
      "fc_upsamples": 1, "fc_upsample_filters": 256, "fc_gblock_depth": 3,
      "fc_gblock_min_nodes": 512, "fc_gblock_max_nodes": 512, "fc_gblock_filter_slope": -0.5,
      "fc_gblock_dropout": 0.0, "dec_upscale_method": "subpixel", "dec_upscales_in_fc": 0,
      "dec_norm": "none", "dec_min_filters": 128, "dec_max_filters": 512,
      "dec_slope_mode": "full", "dec_filter_slope": -0.33, "dec_res_blocks": 1,
      "dec_output_kernel": 1, "dec_gaussian": false, "dec_skip_last_residual": false,
      "freeze_layers": "encoder", "load_layers": "encoder", "fs_original_depth": 4,
      "fs_original_min_filters": 64, "fs_original_max_filters": 512,
      "fs_original_use_alt": false, "mobilenet_width": 1.0, "mobilenet_depth": 1,
      "mobilenet_dropout": 0.001, "__filetype": "faceswap_preset",
      "__section": "train|model|phaze_a"
    }"#;

    #[test]
    fn faceswap_json_presets_read_as_ours() {
        let (o, notes) = PhazeAOptions::from_faceswap_json(FACESWAP_DF).unwrap();
        assert_eq!(o, PhazeAOptions::preset("dfl-saehd-df").unwrap());
        assert_eq!(notes.len(), 2, "freeze_layers and load_layers: {notes:?}");
        // Faceswap++'s 256px.json (aopsr/faceswap): its ImageNet encoder weights are noted.
        let fspp = PhazeAOptions::preset("fspp-256").unwrap();
        let mut json: serde_json::Value = serde_json::from_str(FACESWAP_DF).unwrap();
        let changes = serde_json::json!({
            "output_size": 256, "enable_gblock": true, "split_fc": true, "split_decoders": false,
            "enc_architecture": "efficientnet_v2_b0", "enc_scaling": 60, "enc_load_weights": true,
            "bottleneck_norm": "rms", "bottleneck_size": 512, "bottleneck_in_encoder": true,
            "fc_min_filters": 1024, "fc_max_filters": 1024, "fc_dimensions": 4,
            "fc_upsamples": 0, "fc_upsample_filters": 512, "dec_min_filters": 64,
            "dec_filter_slope": -0.45, "dec_output_kernel": 5, "dec_type": "original",
            "d_dims": 64, "dec_filters": "", "fs_original_min_filters": 128,
            "fs_original_max_filters": 1024, "dec_max_filters": 512
        });
        for (k, v) in changes.as_object().unwrap() {
            json[k] = v.clone();
        }
        let (o, notes) = PhazeAOptions::from_faceswap_json(&json.to_string()).unwrap();
        assert_eq!(o, fspp);
        assert!(notes.iter().any(|n| n.contains("ImageNet")), "{notes:?}");
        // What cannot be built is refused by name.
        for (key, value, named) in [
            (
                "dec_upscale_method",
                serde_json::json!("upscale_dny"),
                "upscale_dny",
            ),
            (
                "enc_architecture",
                serde_json::json!("resnet50"),
                "resnet50",
            ),
            (
                "dec_upscales_in_fc",
                serde_json::json!(2),
                "dec_upscales_in_fc",
            ),
            ("some_new_option", serde_json::json!(1), "some_new_option"),
        ] {
            let mut bad: serde_json::Value = serde_json::from_str(FACESWAP_DF).unwrap();
            bad[key] = value;
            let err = PhazeAOptions::from_faceswap_json(&bad.to_string()).unwrap_err();
            assert!(err.to_string().contains(named), "{key}: {err}");
        }
        let other = FACESWAP_DF.replace("train|model|phaze_a", "train|model|dlight");
        assert!(PhazeAOptions::from_faceswap_json(&other).is_err());
    }
}
