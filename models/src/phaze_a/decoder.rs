//! The Phaze-A decoder: upscales on a filter curve, residual blocks, the mask branch.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::{leaky_relu, sigmoid};
use burn::tensor::{Device, Tensor};

use crate::conv;
use crate::saehd::{ResBlock, same_conv};

use super::*;

/// A Phaze-A decoder: upscales (+ norm, residual blocks) to a face and, without residual
/// blocks, to its mask.
#[derive(Module, Debug)]
pub(super) struct PaDecoder {
    pub(super) ups: Vec<Upscaler>,
    pub(super) norms: Vec<Option<FeatureNorm>>,
    pub(super) res: Vec<Vec<ResBlock>>,
    pub(super) mask_ups: Vec<Upscaler>,
    pub(super) mask_norms: Vec<Option<FeatureNorm>>,
    pub(super) out: Conv2d,
    pub(super) out_mask: Conv2d,
    pub(super) gaussian: bool,
}

impl PaDecoder {
    pub(super) fn new(o: &PhazeAOptions, input: usize, device: &Device) -> Self {
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

    pub(super) fn forward(&self, z: Tensor<4>, noise: bool) -> (Tensor<4>, Tensor<4>) {
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
