//! EfficientNetV2 B0–B3 (Keras' block table) as a Phaze-A encoder.

use burn::module::Module;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use crate::saehd::same_conv;

use super::*;

/// One (Fused-)MBConv block of EfficientNetV2.
#[derive(Module, Debug)]
pub(super) struct EffBlock {
    pub(super) expand: Option<ConvBn>,
    pub(super) depthwise: Option<ConvBn>,
    pub(super) se: Option<SqueezeExcite>,
    pub(super) project: ConvBn,
    pub(super) project_act: bool,
    pub(super) residual: bool,
}

/// One stage of Keras' EfficientNetV2 block table.
pub(super) struct StageArgs {
    pub(super) kernel: usize,
    pub(super) repeats: usize,
    pub(super) input: usize,
    pub(super) output: usize,
    pub(super) expand: usize,
    pub(super) se: f32,
    pub(super) stride: usize,
    pub(super) fused: bool,
}

/// keras/src/applications/efficientnet_v2.py `DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"]` (B1–B3
/// scale it by their width and depth coefficients).
pub(super) const V2_BASE_STAGES: [StageArgs; 6] = [
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
pub(super) const fn stage(
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
pub(super) fn round_filters(filters: usize, width: f32) -> usize {
    let f = filters as f32 * width;
    let mut new = 8usize.max(((f + 4.0) as usize / 8) * 8);
    if (new as f32) < 0.9 * f {
        new += 8;
    }
    new
}

impl EffBlock {
    pub(super) fn new(s: &StageArgs, i: usize, o: usize, stride: usize, device: &Device) -> Self {
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

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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
pub(super) struct EfficientNetV2 {
    pub(super) stem: ConvBn,
    pub(super) blocks: Vec<EffBlock>,
    pub(super) top: ConvBn,
}

impl EfficientNetV2 {
    pub(super) fn new(width: f32, depth: f32, device: &Device) -> (Self, usize) {
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

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, 3, S, S] in [-1, 1] → [B, 1280·w, S/32, S/32]
        let mut x = silu(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        silu(self.top.forward(x))
    }
}
