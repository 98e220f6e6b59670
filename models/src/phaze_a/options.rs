//! The Phaze-A options (faceswap's names and defaults), their checks and the node curves.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::*;

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
    pub(super) fn default_size(self) -> usize {
        match self {
            EncoderArch::FsOriginal => 1024,
            EncoderArch::EfficientNetV2B0 => 224,
            EncoderArch::EfficientNetV2B1 => 240,
            EncoderArch::EfficientNetV2B2 => 260,
            EncoderArch::EfficientNetV2B3 => 300,
        }
    }

    /// Keras' (width, depth) coefficients for the EfficientNetV2 variants.
    pub(super) fn coefficients(self) -> (f32, f32) {
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
