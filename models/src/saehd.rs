//! DeepFaceLab's SAEHD networks (DF and LIAE, options `u`, `d`, `t`), in burn.
//!
//! Reproduces iperov/DeepFaceLab core/leras/archis/DeepFakeArchi.py and models/Model_SAEHD:
//! - Downscale: 5×5 stride-2 conv + LReLU 0.1 (TF "SAME" padding, kept exactly by padding
//!   1 before / 2 after); encoder channels e·{1,2,4,8} (`t`: a fifth downscale at e·8 and
//!   residual blocks after the first and last); `u` pixel-normalises the flattened code.
//! - Inter: Dense(ae) → Dense(lowest²·out_ch) → reshape → Upscale (`t`: the upscale moves into
//!   the decoder); lowest = res/16 (res/32 with `d`).
//! - Upscale: 3×3 conv to 4·out channels + LReLU 0.1 + depth-to-space 2. ResBlock: two 3×3
//!   convs, LReLU 0.2 inside and after the skip.
//! - Decoder: (Upscale + ResBlock) at d·{8,4,2} (`t`: d·{8,8,4,2}), 1×1 conv + sigmoid (`d`: the
//!   1×1 plus three 3×3 convs → 12 channels → depth-to-space); mask branch with d_mask channels.
//! - DF: one encoder and inter, decoders for src and dst. LIAE: one encoder, inter_AB and
//!   inter_B (out 2·ae), one decoder fed the channel concatenation the way DFL does.
//!
//! Layout is NCHW (burn's); DFL is NHWC, which only changes the order of flattened features.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, PixelShuffle, PixelShuffleConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use crate::conv;

/// SAEHD architecture family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archi {
    /// Shared encoder + inter, one decoder per side.
    Df,
    /// Shared encoder, inter_AB + inter_B, one decoder.
    Liae,
}

/// SAEHD options as DFL spells them (`df-ud`, `liae-udt`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaehdOptions {
    /// DF or LIAE.
    pub archi: Archi,
    /// `u`: pixel-norm the encoder output.
    pub u: bool,
    /// `d`: double resolution (depth-to-space output, dense at res/32).
    pub d: bool,
    /// `t`: extra downscale and residual blocks.
    pub t: bool,
    /// Face resolution (multiple of 16; of 32 with `d`).
    pub resolution: usize,
    /// Autoencoder dims (DFL default 256).
    pub ae_dims: usize,
    /// Encoder dims (default 64).
    pub e_dims: usize,
    /// Decoder dims (default 64).
    pub d_dims: usize,
    /// Mask decoder dims (default d_dims/3, made even: 22).
    pub d_mask_dims: usize,
}

impl SaehdOptions {
    /// Parses DFL's archi string (`df`, `liae-ud`, `df-udt`…) with the given sizes.
    pub fn parse(
        archi: &str,
        resolution: usize,
        ae_dims: usize,
        e_dims: usize,
        d_dims: usize,
        d_mask_dims: usize,
    ) -> Result<Self, String> {
        let (base, opts) = archi.split_once('-').unwrap_or((archi, ""));
        let archi = match base {
            "df" => Archi::Df,
            "liae" => Archi::Liae,
            other => {
                return Err(format!(
                    "archi {other:?}: use df or liae, with options -u, -d, -t"
                ));
            }
        };
        if let Some(c) = opts.chars().find(|c| !"udt".contains(*c)) {
            return Err(format!("archi option {c:?}: use u, d and/or t"));
        }
        let (d, t) = (opts.contains('d'), opts.contains('t'));
        let step = if d { 32 } else { 16 };
        if resolution < step || !resolution.is_multiple_of(step) {
            return Err(format!(
                "resolution {resolution} must be a multiple of {step} for this archi"
            ));
        }
        Ok(SaehdOptions {
            archi,
            u: opts.contains('u'),
            d,
            t,
            resolution,
            ae_dims,
            e_dims,
            d_dims,
            d_mask_dims,
        })
    }

    fn lowest(&self) -> usize {
        self.resolution / if self.d { 32 } else { 16 }
    }

    fn encoder_res(&self) -> usize {
        self.resolution / if self.t { 32 } else { 16 }
    }

    fn encoder_out(&self) -> usize {
        self.encoder_res() * self.encoder_res() * self.e_dims * 8
    }

    fn inter_out_ch(&self) -> usize {
        match self.archi {
            Archi::Df => self.ae_dims,
            Archi::Liae => self.ae_dims * 2,
        }
    }

    fn decoder_in_ch(&self) -> usize {
        match self.archi {
            Archi::Df => self.inter_out_ch(),
            Archi::Liae => self.inter_out_ch() * 2,
        }
    }

    /// Builds the networks on `device`.
    pub fn init(&self, device: &Device) -> Saehd {
        let encoder = Encoder::new(self, device);
        let inter = |dev: &Device| Inter::new(self, dev);
        let decoder = |dev: &Device| Decoder::new(self, dev);
        match self.archi {
            Archi::Df => Saehd {
                encoder,
                inter_ab: inter(device),
                inter_b: None,
                decoder_a: decoder(device),
                decoder_b: Some(decoder(device)),
                liae: false,
            },
            Archi::Liae => Saehd {
                encoder,
                inter_ab: inter(device),
                inter_b: Some(inter(device)),
                decoder_a: decoder(device),
                decoder_b: None,
                liae: true,
            },
        }
    }

    /// Floating-point operations of one training step on `batch` faces per side, for SAEHD-DF
    /// without `d` or `t` (the GPU check's TFLOP/s): each convolution and dense layer's
    /// multiply-adds (2 FLOPs each) forward, times 3 for forward + input and weight gradients;
    /// activations, losses and the optimiser are left out (a few percent). `None` for other
    /// variants, which are not counted.
    pub fn train_step_flops(&self, batch: usize) -> Option<f64> {
        if self.archi != Archi::Df || self.d || self.t {
            return None;
        }
        // 2·k²·cin·cout per output position of a k×k convolution.
        let conv = |k: usize, cin: usize, cout: usize, side: usize| {
            2.0 * (k * k * cin * cout * side * side) as f64
        };
        let (e, ae, r, lowest) = (self.e_dims, self.ae_dims, self.resolution, self.lowest());
        let chans = [3, e, 2 * e, 4 * e, 8 * e];
        let encoder: f64 = (0..4)
            .map(|i| conv(5, chans[i], chans[i + 1], r >> (i + 1)))
            .sum();
        let inter = 2.0 * (self.encoder_out() * ae) as f64
            + 2.0 * (ae * lowest * lowest * ae) as f64
            + conv(3, ae, 4 * ae, lowest);
        // Each ladder step: an upscale (3×3 to 4× channels at the input side), then for the
        // face a residual block (two 3×3) at twice the side.
        let ladder = |dims: usize, residual: bool| {
            let (mut side, mut last, mut flops) = (2 * lowest, ae, 0.0);
            for mul in [8, 4, 2] {
                flops += conv(3, last, 4 * mul * dims, side);
                side *= 2;
                if residual {
                    flops += 2.0 * conv(3, mul * dims, mul * dims, side);
                }
                last = mul * dims;
            }
            flops
        };
        let decoder = ladder(self.d_dims, true)
            + ladder(self.d_mask_dims, false)
            + conv(1, 2 * self.d_dims, 3, r)
            + conv(1, 2 * self.d_mask_dims, 1, r);
        // Both sides go through the encoder and inter, each through its own decoder.
        Some(3.0 * 2.0 * batch as f64 * (encoder + inter + decoder))
    }

    /// Parameter count derived from DFL's layer list, independent of the burn modules.
    pub fn expected_params(&self) -> usize {
        let conv = |k: usize, i: usize, o: usize| k * k * i * o + o;
        let dense = |i: usize, o: usize| i * o + o;
        let res = |c: usize| 2 * conv(3, c, c);
        let up = |i: usize, o: usize| conv(3, i, 4 * o);
        let (e, ae, dd, dm) = (self.e_dims, self.ae_dims, self.d_dims, self.d_mask_dims);
        let encoder = if self.t {
            conv(5, 3, e)
                + res(e)
                + conv(5, e, 2 * e)
                + conv(5, 2 * e, 4 * e)
                + conv(5, 4 * e, 8 * e)
                + conv(5, 8 * e, 8 * e)
                + res(8 * e)
        } else {
            conv(5, 3, e) + conv(5, e, 2 * e) + conv(5, 2 * e, 4 * e) + conv(5, 4 * e, 8 * e)
        };
        let oc = self.inter_out_ch();
        let inter = dense(self.encoder_out(), ae)
            + dense(ae, self.lowest() * self.lowest() * oc)
            + if self.t { 0 } else { up(oc, oc) };
        let i = self.decoder_in_ch();
        // Channel ladders (multiples of d_dims / d_mask_dims), each step one Upscale.
        let units: &[usize] = if self.t { &[8, 8, 4, 2] } else { &[8, 4, 2] };
        let ladder = |mul: usize| {
            let mut last = i;
            units
                .iter()
                .map(|u| {
                    let p = up(last, u * mul);
                    last = u * mul;
                    p
                })
                .sum::<usize>()
        };
        let mut decoder =
            ladder(dd) + units.iter().map(|u| res(u * dd)).sum::<usize>() + ladder(dm);
        decoder += conv(1, 2 * dd, 3);
        decoder += if self.d {
            3 * conv(3, 2 * dd, 3) + up(2 * dm, dm) + conv(1, dm, 1)
        } else {
            conv(1, 2 * dm, 1)
        };
        match self.archi {
            Archi::Df => encoder + inter + 2 * decoder,
            Archi::Liae => encoder + 2 * inter + decoder,
        }
    }
}

fn conv(k: usize, i: usize, o: usize, stride: usize, device: &Device) -> Conv2d {
    same_conv(k, i, o, stride, 1, true, device)
}

/// A TF "SAME" convolution, as DFL and faceswap build theirs: for stride 2 the extra row/column
/// of padding goes after (bottom/right).
pub(crate) fn same_conv(
    k: usize,
    i: usize,
    o: usize,
    stride: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let total = k.saturating_sub(stride);
    let (before, after) = if stride == 1 {
        (k / 2, k / 2)
    } else {
        (total / 2, total - total / 2)
    };
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_bias(bias)
        .with_padding(PaddingConfig2d::Explicit(before, before, after, after))
        .init(device)
}

#[derive(Module, Debug)]
struct Upscale {
    conv: Conv2d,
    shuffle: PixelShuffle,
}

impl Upscale {
    fn new(i: usize, o: usize, device: &Device) -> Self {
        Upscale {
            conv: conv(3, i, 4 * o, 1, device),
            shuffle: PixelShuffleConfig::new(2).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, C, H, W] → [B, 4·O, H, W] → [B, O, 2H, 2W]
        self.shuffle
            .forward(conv::forward_leaky(&self.conv, x, None, 0.1))
    }
}

/// Two 3×3 convs with LReLU 0.2 inside and after the skip (DFL ResidualBlock; faceswap's
/// ResidualBlock is the same).
#[derive(Module, Debug)]
pub(crate) struct ResBlock {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl ResBlock {
    pub(crate) fn new(c: usize, device: &Device) -> Self {
        ResBlock {
            conv1: conv(3, c, c, 1, device),
            conv2: conv(3, c, c, 1, device),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, C, H, W] throughout
        let y = conv::forward_leaky(&self.conv1, x.clone(), None, 0.2);
        conv::forward_leaky(&self.conv2, y, Some(x), 0.2)
    }
}

#[derive(Module, Debug)]
struct Encoder {
    downs: Vec<Conv2d>,
    res_first: Option<ResBlock>,
    res_last: Option<ResBlock>,
    pixel_norm: bool,
}

impl Encoder {
    fn new(o: &SaehdOptions, device: &Device) -> Self {
        let e = o.e_dims;
        let chans: Vec<usize> = if o.t {
            vec![e, 2 * e, 4 * e, 8 * e, 8 * e]
        } else {
            vec![e, 2 * e, 4 * e, 8 * e]
        };
        let mut last = 3;
        let downs = chans
            .iter()
            .map(|&c| {
                let d = conv(5, last, c, 2, device);
                last = c;
                d
            })
            .collect();
        Encoder {
            downs,
            res_first: o.t.then(|| ResBlock::new(e, device)),
            res_last: o.t.then(|| ResBlock::new(8 * e, device)),
            pixel_norm: o.u,
        }
    }

    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        // [B, 3, R, R] → [B, 8e, R/16, R/16] (R/32 with t) → [B, code]
        for (i, down) in self.downs.iter().enumerate() {
            x = conv::forward_leaky(down, x, None, 0.1);
            if i == 0
                && let Some(r) = &self.res_first
            {
                x = r.forward(x);
            }
        }
        if let Some(r) = &self.res_last {
            x = r.forward(x);
        }
        let code: Tensor<2> = x.flatten(1, 3);
        if self.pixel_norm {
            // x / sqrt(mean(x²) + 1e-6) over the code
            let norm = code
                .clone()
                .powf_scalar(2.0)
                .mean_dim(1)
                .add_scalar(1e-6)
                .sqrt();
            code / norm
        } else {
            code
        }
    }
}

#[derive(Module, Debug)]
struct Inter {
    dense1: Linear,
    dense2: Linear,
    upscale: Option<Upscale>,
    lowest: usize,
    out_ch: usize,
}

impl Inter {
    fn new(o: &SaehdOptions, device: &Device) -> Self {
        let (lowest, out_ch) = (o.lowest(), o.inter_out_ch());
        Inter {
            dense1: LinearConfig::new(o.encoder_out(), o.ae_dims).init(device),
            dense2: LinearConfig::new(o.ae_dims, lowest * lowest * out_ch).init(device),
            upscale: (!o.t).then(|| Upscale::new(out_ch, out_ch, device)),
            lowest,
            out_ch,
        }
    }

    fn forward(&self, code: Tensor<2>) -> Tensor<4> {
        // [B, code] → [B, ae] → [B, L·L·C] → [B, C, L, L] → [B, C, 2L, 2L] (not with t)
        let b = code.dims()[0];
        let x = self.dense2.forward(self.dense1.forward(code));
        let x: Tensor<4> = x.reshape([b, self.out_ch, self.lowest, self.lowest]);
        match &self.upscale {
            Some(u) => u.forward(x),
            None => x,
        }
    }
}

#[derive(Module, Debug)]
struct Decoder {
    ups: Vec<Upscale>,
    res: Vec<ResBlock>,
    mask_ups: Vec<Upscale>,
    out_conv: Conv2d,
    out_convs_d: Vec<Conv2d>,
    out_conv_mask: Conv2d,
    shuffle: PixelShuffle,
}

impl Decoder {
    fn new(o: &SaehdOptions, device: &Device) -> Self {
        let (i, dd, dm) = (o.decoder_in_ch(), o.d_dims, o.d_mask_dims);
        let img: Vec<usize> = if o.t {
            vec![8 * dd, 8 * dd, 4 * dd, 2 * dd]
        } else {
            vec![8 * dd, 4 * dd, 2 * dd]
        };
        let mut mask: Vec<usize> = if o.t {
            vec![8 * dm, 8 * dm, 4 * dm, 2 * dm]
        } else {
            vec![8 * dm, 4 * dm, 2 * dm]
        };
        if o.d {
            mask.push(dm);
        }
        let chain = |chans: &[usize]| {
            let mut last = i;
            chans
                .iter()
                .map(|&c| {
                    let u = Upscale::new(last, c, device);
                    last = c;
                    u
                })
                .collect::<Vec<_>>()
        };
        let mask_last = *mask.last().unwrap_or(&(2 * dm));
        Decoder {
            ups: chain(&img),
            res: img.iter().map(|&c| ResBlock::new(c, device)).collect(),
            mask_ups: chain(&mask),
            out_conv: conv(1, 2 * dd, 3, 1, device),
            out_convs_d: if o.d {
                (0..3).map(|_| conv(3, 2 * dd, 3, 1, device)).collect()
            } else {
                Vec::new()
            },
            out_conv_mask: conv(1, mask_last, 1, 1, device),
            shuffle: PixelShuffleConfig::new(2).init(),
        }
    }

    fn forward(&self, z: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        // [B, Cin, L', L'] → image [B, 3, R, R] and mask [B, 1, R, R]
        let mut x = z.clone();
        for (u, r) in self.ups.iter().zip(&self.res) {
            x = r.forward(u.forward(x));
        }
        let image = if self.out_convs_d.is_empty() {
            sigmoid(conv::forward(&self.out_conv, x))
        } else {
            // [B, 12, R/2, R/2] → [B, 3, R, R]
            let mut parts = vec![conv::forward(&self.out_conv, x.clone())];
            parts.extend(self.out_convs_d.iter().map(|c| conv::forward(c, x.clone())));
            sigmoid(self.shuffle.forward(Tensor::cat(parts, 1)))
        };
        let mut m = z;
        for u in &self.mask_ups {
            m = u.forward(m);
        }
        (image, sigmoid(conv::forward(&self.out_conv_mask, m)))
    }
}

/// The SAEHD networks of one model.
#[derive(Module, Debug)]
pub struct Saehd {
    encoder: Encoder,
    /// DF: the shared inter. LIAE: inter_AB.
    inter_ab: Inter,
    /// LIAE: inter_B.
    inter_b: Option<Inter>,
    /// DF: decoder_src. LIAE: the only decoder.
    decoder_a: Decoder,
    /// DF: decoder_dst.
    decoder_b: Option<Decoder>,
    liae: bool,
}

/// Reconstructions and both swaps for one batch of each side.
pub struct FaceOutput {
    /// A reconstructed, `[B, 3, R, R]`, and its mask `[B, 1, R, R]`.
    pub a: (Tensor<4>, Tensor<4>),
    /// B reconstructed and its mask.
    pub b: (Tensor<4>, Tensor<4>),
    /// B's face swapped to A's identity (what merge uses), and its mask.
    pub b_to_a: (Tensor<4>, Tensor<4>),
    /// A's face rendered as B (the preview's A→B column), and its mask.
    pub a_to_b: (Tensor<4>, Tensor<4>),
}

/// What the encoder and inter(s) make of a batch of each side, before any decoder.
// Lives for one forward pass on the stack; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Codes {
    /// DF: the shared inter's output for each side.
    Df { za: Tensor<4>, zb: Tensor<4> },
    /// LIAE: inter_AB of both sides, inter_B of B, and A's encoding (for A seen as B).
    Liae {
        enc_a: Tensor<2>,
        ab_a: Tensor<4>,
        ab_b: Tensor<4>,
        b_b: Tensor<4>,
    },
}

impl Saehd {
    fn codes(&self, a: Tensor<4>, b: Tensor<4>) -> Codes {
        // [B, 3, R, R] each
        let (ca, cb) = (self.encoder.forward(a), self.encoder.forward(b));
        if self.liae {
            let inter_b = self.inter_b.as_ref().unwrap_or(&self.inter_ab);
            Codes::Liae {
                ab_a: self.inter_ab.forward(ca.clone()),
                ab_b: self.inter_ab.forward(cb.clone()),
                b_b: inter_b.forward(cb),
                enc_a: ca,
            }
        } else {
            Codes::Df {
                za: self.inter_ab.forward(ca),
                zb: self.inter_ab.forward(cb),
            }
        }
    }

    /// Decoder inputs reconstructing A and B. DFL LIAE concatenates along channels: src
    /// [AB, AB], dst [B, AB]; DF uses inter's output as it is.
    fn reconstruction_inputs(codes: &Codes) -> (Tensor<4>, Tensor<4>) {
        match codes {
            Codes::Df { za, zb } => (za.clone(), zb.clone()),
            Codes::Liae {
                ab_a, ab_b, b_b, ..
            } => (
                Tensor::cat(vec![ab_a.clone(), ab_a.clone()], 1),
                Tensor::cat(vec![b_b.clone(), ab_b.clone()], 1),
            ),
        }
    }

    /// Decoder inputs for B seen as A (DFL LIAE: [AB(dst), AB(dst)]) and A seen as B
    /// ([B(src), AB(src)]).
    fn swap_inputs(&self, codes: Codes) -> (Tensor<4>, Tensor<4>) {
        match codes {
            Codes::Df { za, zb } => (zb, za),
            Codes::Liae {
                enc_a, ab_a, ab_b, ..
            } => {
                let inter_b = self.inter_b.as_ref().unwrap_or(&self.inter_ab);
                (
                    Tensor::cat(vec![ab_b.clone(), ab_b], 1),
                    Tensor::cat(vec![inter_b.forward(enc_a), ab_a], 1),
                )
            }
        }
    }

    /// The decoder that reconstructs B (DF: decoder_dst; LIAE: the one decoder).
    fn decoder_for_b(&self) -> &Decoder {
        self.decoder_b.as_ref().unwrap_or(&self.decoder_a)
    }

    /// Reconstructs both sides without the swaps, as a training step needs (DFL's training
    /// graph never evaluates them unless GAN or style powers are on).
    pub fn forward_train(
        &self,
        a: Tensor<4>,
        b: Tensor<4>,
    ) -> ((Tensor<4>, Tensor<4>), (Tensor<4>, Tensor<4>)) {
        let (za, zb) = Self::reconstruction_inputs(&self.codes(a, b));
        (self.decoder_a.forward(za), self.decoder_for_b().forward(zb))
    }

    /// Runs both sides and both swaps (src = A, dst = B in DFL's terms).
    pub fn forward(&self, a: Tensor<4>, b: Tensor<4>) -> FaceOutput {
        let codes = self.codes(a, b);
        let (za, zb) = Self::reconstruction_inputs(&codes);
        let (b_as_a, a_as_b) = self.swap_inputs(codes);
        FaceOutput {
            a: self.decoder_a.forward(za),
            b: self.decoder_for_b().forward(zb),
            b_to_a: self.decoder_a.forward(b_as_a),
            a_to_b: self.decoder_for_b().forward(a_as_b),
        }
    }
}

/// What merge needs for one batch of destination faces.
pub struct SwapOutput {
    /// The faces swapped to A's identity, `[B, 3, R, R]` in [0, 1].
    pub face: Tensor<4>,
    /// The mask predicted with the swapped face (DFL "learned-prd"), `[B, 1, R, R]`.
    pub face_mask: Tensor<4>,
    /// The mask predicted for the destination face itself (DFL "learned-dst"), `[B, 1, R, R]`.
    pub dst_mask: Tensor<4>,
}

/// The weights in a checkpoint do not fit the architecture.
#[derive(Debug, thiserror::Error)]
#[error("the weights do not fit this SAEHD architecture: {0}")]
pub struct LoadError(pub String);

/// A part of a swap model that can be taken from a pretrained one and frozen (Faceswap++:
/// load only the encoder of a model pretrained on many faces to cut identity bleed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelPart {
    /// The shared encoder.
    Encoder,
    /// The inter (DF) or both inters (LIAE).
    Inter,
    /// Decoder A (DF's src decoder; LIAE's only decoder).
    DecoderA,
    /// Decoder B (DF's dst decoder).
    DecoderB,
}

impl ModelPart {
    /// Parses `encoder`, `inter`, `decoder_a`, `decoder_b`.
    pub fn parse(s: &str) -> Option<ModelPart> {
        Some(match s {
            "encoder" => ModelPart::Encoder,
            "inter" => ModelPart::Inter,
            "decoder_a" | "decoder-a" => ModelPart::DecoderA,
            "decoder_b" | "decoder-b" => ModelPart::DecoderB,
            _ => return None,
        })
    }
}

impl Saehd {
    /// Swaps destination (B) faces to A's identity, with both of DFL's learned masks — the
    /// merger's predictor (DFL `Model_SAEHD.AE_merge`).
    pub fn swap(&self, b: Tensor<4>) -> SwapOutput {
        // [B, 3, R, R]
        let enc = self.encoder.forward(b);
        let (as_a, as_b) = if self.liae {
            let inter_b = self.inter_b.as_ref().unwrap_or(&self.inter_ab);
            let ab = self.inter_ab.forward(enc.clone());
            let bb = inter_b.forward(enc);
            (
                Tensor::cat(vec![ab.clone(), ab.clone()], 1),
                Tensor::cat(vec![bb, ab], 1),
            )
        } else {
            let z = self.inter_ab.forward(enc);
            (z.clone(), z)
        };
        let (face, face_mask) = self.decoder_a.forward(as_a);
        let (_, dst_mask) = self.decoder_for_b().forward(as_b);
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

    fn options(archi: &str, res: usize) -> SaehdOptions {
        // Small dims keep the test fast; the formula is checked for any sizes.
        SaehdOptions::parse(archi, res, 32, 8, 8, 4).unwrap()
    }

    #[test]
    fn a_df_training_steps_flops_add_up_layer_by_layer() {
        // 16 px with every width 1, counted by hand: encoder 14,400 (5×5 convolutions at 8², 4²,
        // 2², 1²), inter 90, decoder 266,752 (upscales, residual blocks, 1×1 outputs) FLOPs
        // forward per face; ×2 sides, ×3 for the gradients.
        let o = SaehdOptions::parse("df", 16, 1, 1, 1, 1).unwrap();
        assert_eq!(o.train_step_flops(1), Some(1_687_452.0));
        assert_eq!(o.train_step_flops(8), Some(8.0 * 1_687_452.0));
        assert_eq!(options("liae", 64).train_step_flops(1), None);
        assert_eq!(options("df-t", 64).train_step_flops(1), None);
    }

    #[test]
    fn archi_strings_parse_and_bad_ones_are_refused() {
        let o = SaehdOptions::parse("liae-udt", 128, 256, 64, 64, 22).unwrap();
        assert_eq!((o.archi, o.u, o.d, o.t), (Archi::Liae, true, true, true));
        assert!(SaehdOptions::parse("dfx", 128, 256, 64, 64, 22).is_err());
        assert!(SaehdOptions::parse("df-q", 128, 256, 64, 64, 22).is_err());
        assert!(
            SaehdOptions::parse("df-d", 80, 256, 64, 64, 22).is_err(),
            "d needs a multiple of 32"
        );
    }

    #[test]
    fn every_archi_builds_with_dfl_parameter_counts_and_shapes() {
        // burn draws from one generator per process; keep other tests' draws out of ours.
        let _draws = crate::weights::random_draws();
        let device = Device::flex();
        for archi in [
            "df", "df-u", "df-d", "df-t", "df-ud", "df-udt", "liae", "liae-u", "liae-d", "liae-t",
            "liae-udt",
        ] {
            for res in [64, 128] {
                let o = options(archi, res);
                let model = o.init(&device);
                let params = model.num_params();
                println!("SAEHD {archi} {res}px: {params} parameters");
                assert_eq!(params, o.expected_params(), "{archi} {res}");
                let x = Tensor::<4>::zeros([2, 3, res, res], &device);
                let out = model.forward(x.clone(), x);
                for (img, mask) in [&out.a, &out.b, &out.b_to_a, &out.a_to_b] {
                    assert_eq!(img.dims(), [2, 3, res, res], "{archi} {res}");
                    assert_eq!(mask.dims(), [2, 1, res, res], "{archi} {res}");
                }
            }
        }
    }

    fn seeded(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let mut state = seed;
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        Tensor::from_data(burn::tensor::TensorData::new(data, shape), device)
    }

    #[test]
    fn accumulated_micro_batches_give_the_full_batch_update() {
        // burn draws from one generator per process; keep other tests' draws out of ours.
        let _draws = crate::weights::random_draws();
        use crate::losses::saehd_image_loss;
        use burn::optim::{GradientsAccumulator, GradientsParams, SgdConfig};
        let device = Device::flex().autodiff();
        let o = SaehdOptions::parse("df-ud", 32, 16, 4, 4, 2).unwrap();
        let model = o.init(&device);
        let (a, b) = (
            seeded([4, 3, 32, 32], 1, &device),
            seeded([4, 3, 32, 32], 2, &device),
        );
        let loss_of = |m: &Saehd, a: Tensor<4>, b: Tensor<4>| {
            let out = m.forward(a.clone(), b.clone());
            saehd_image_loss(out.a.0, a, 32) + saehd_image_loss(out.b.0, b, 32)
        };
        let lr = 1e-2;
        // One batch of 4.
        let grads =
            GradientsParams::from_grads(loss_of(&model, a.clone(), b.clone()).backward(), &model);
        let full = SgdConfig::new().init().step(lr, model.clone(), grads);
        // Two micro-batches of 2, each loss scaled by 1/2, gradients accumulated.
        let mut acc = GradientsAccumulator::new();
        for k in 0..2 {
            let (ma, mb) = (a.clone().narrow(0, 2 * k, 2), b.clone().narrow(0, 2 * k, 2));
            let loss = loss_of(&model, ma, mb).mul_scalar(0.5);
            acc.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
        }
        let micro = SgdConfig::new().init().step(lr, model.clone(), acc.grads());
        let pairs = [
            (
                model.encoder.downs[0].weight.val(),
                full.encoder.downs[0].weight.val(),
                micro.encoder.downs[0].weight.val(),
            ),
            (
                model.decoder_a.out_conv.weight.val(),
                full.decoder_a.out_conv.weight.val(),
                micro.decoder_a.out_conv.weight.val(),
            ),
        ];
        // ‖Δfull − Δmicro‖ / ‖Δfull‖ for one weight tensor.
        fn relative<const D: usize>(before: Tensor<D>, full: Tensor<D>, micro: Tensor<D>) -> f32 {
            let df = full - before.clone();
            let dm = micro - before;
            let num: f32 = (df.clone() - dm)
                .powf_scalar(2.0)
                .sum()
                .sqrt()
                .into_scalar();
            let den: f32 = df.powf_scalar(2.0).sum().sqrt().into_scalar();
            assert!(den > 0.0, "the step changed the weights");
            num / den
        }
        for (before, f, m) in pairs {
            let r = relative(before, f, m);
            assert!(r <= 1e-4, "relative difference {r}");
        }
        let r = relative(
            model.inter_ab.dense2.weight.val(),
            full.inter_ab.dense2.weight.val(),
            micro.inter_ab.dense2.weight.val(),
        );
        println!("gradient accumulation: relative update difference {r:.2e} on inter dense2");
        assert!(r <= 1e-4);
    }

    #[test]
    fn dfl_default_sizes_have_dfl_parameter_counts_at_256() {
        // burn draws from one generator per process; keep other tests' draws out of ours.
        let _draws = crate::weights::random_draws();
        // Formula only (building 256 px at DFL's default dims takes too long for a unit test).
        let o = SaehdOptions::parse("liae-ud", 256, 256, 64, 64, 22).unwrap();
        println!(
            "SAEHD liae-ud 256px, DFL default dims: {} parameters",
            o.expected_params()
        );
        let device = Device::flex();
        let small = SaehdOptions::parse("liae-ud", 256, 16, 4, 4, 2).unwrap();
        assert_eq!(small.init(&device).num_params(), small.expected_params());
    }
}
