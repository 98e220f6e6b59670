//! XSeg: the face segmentation network DeepFaceLab users label and train themselves
//! (iperov/DeepFaceLab core/leras/models/XSeg.py), in burn.
//!
//! A documented variant of DFL's U-Net: DFL normalises with FRN + TLU, downsamples with
//! BlurPool and has a dense bottleneck; here each level is two 3×3 convs with GroupNorm and
//! leaky ReLU, downsampling is 2×2 average pooling (a box blur before subsampling, the cheap
//! form of BlurPool), the bottleneck is convolutional, and upsampling is conv + depth-to-space
//! (as SAEHD's decoder). Output: one sigmoid channel, the probability of "face".

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d, PixelShuffle, PixelShuffleConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{leaky_relu, sigmoid};
use burn::tensor::{Device, Tensor};

use crate::conv;

/// Network size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XSegOptions {
    /// Input side in pixels (a multiple of 16; DFL uses 256).
    pub resolution: usize,
    /// Channels of the first level (doubled per level; DFL's base is 32).
    pub base: usize,
}

impl Default for XSegOptions {
    fn default() -> Self {
        XSegOptions {
            resolution: 256,
            base: 32,
        }
    }
}

const LEVELS: usize = 4;

#[derive(Module, Debug)]
struct Block {
    conv1: Conv2d,
    norm1: GroupNorm,
    conv2: Conv2d,
    norm2: GroupNorm,
}

fn conv3(i: usize, o: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

fn groups(c: usize) -> usize {
    // The most groups that keep at least 4 channels each (the count must divide the channels).
    (1..=c)
        .rev()
        .find(|g| c.is_multiple_of(*g) && c / g >= 4)
        .unwrap_or(1)
}

impl Block {
    fn new(i: usize, o: usize, device: &Device) -> Self {
        Block {
            conv1: conv3(i, o, device),
            norm1: GroupNormConfig::new(groups(o), o).init(device),
            conv2: conv3(o, o, device),
            norm2: GroupNormConfig::new(groups(o), o).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, I, H, W] → [B, O, H, W]
        let x = leaky_relu(self.norm1.forward(conv::forward(&self.conv1, x)), 0.1);
        leaky_relu(self.norm2.forward(conv::forward(&self.conv2, x)), 0.1)
    }
}

#[derive(Module, Debug)]
struct Up {
    conv: Conv2d,
    shuffle: PixelShuffle,
}

impl Up {
    fn new(i: usize, o: usize, device: &Device) -> Self {
        Up {
            conv: conv3(i, 4 * o, device),
            shuffle: PixelShuffleConfig::new(2).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [B, I, H, W] → [B, 4·O, H, W] → [B, O, 2H, 2W]
        self.shuffle
            .forward(leaky_relu(conv::forward(&self.conv, x), 0.1))
    }
}

/// The XSeg network.
#[derive(Module, Debug)]
pub struct XSeg {
    down: Vec<Block>,
    pool: AvgPool2d,
    bottleneck: Block,
    up: Vec<Up>,
    merge: Vec<Block>,
    out: Conv2d,
}

impl XSegOptions {
    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> XSeg {
        let ch = |level: usize| self.base << level;
        let mut down = Vec::with_capacity(LEVELS);
        let mut input = 3;
        for l in 0..LEVELS {
            down.push(Block::new(input, ch(l), device));
            input = ch(l);
        }
        let bottleneck = Block::new(ch(LEVELS - 1), ch(LEVELS), device);
        let (mut up, mut merge) = (Vec::new(), Vec::new());
        for l in (0..LEVELS).rev() {
            up.push(Up::new(ch(l + 1), ch(l), device));
            merge.push(Block::new(2 * ch(l), ch(l), device));
        }
        XSeg {
            down,
            pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            bottleneck,
            up,
            merge,
            out: Conv2dConfig::new([self.base, 1], [1, 1]).init(device),
        }
    }
}

impl XSeg {
    /// Face probability per pixel: `[B, 3, R, R]` in [0, 1] → `[B, 1, R, R]` in [0, 1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut skips = Vec::with_capacity(LEVELS);
        let mut x = x;
        for block in &self.down {
            x = block.forward(x); // [B, C_l, H_l, W_l]
            skips.push(x.clone());
            x = self.pool.forward(x); // [B, C_l, H_l/2, W_l/2]
        }
        x = self.bottleneck.forward(x); // [B, C_L, R/16, R/16]
        for (up, merge) in self.up.iter().zip(&self.merge) {
            let skip = skips.pop().unwrap_or_else(|| x.clone());
            x = up.forward(x); // [B, C_l, H_l, W_l]
            x = merge.forward(Tensor::cat(vec![x, skip], 1)); // [B, C_l, H_l, W_l]
        }
        sigmoid(conv::forward(&self.out, x)) // [B, 1, R, R]
    }
}

/// Binary cross-entropy plus soft Dice (Dice keeps thin or small regions from being ignored).
pub fn xseg_loss(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    // [B, 1, R, R] each
    let eps = 1e-6;
    let p = pred.clamp(eps, 1.0 - eps);
    let bce = (target.clone() * p.clone().log()
        + (target.clone().neg() + 1.0) * (p.clone().neg() + 1.0).log())
    .mean()
    .neg();
    let inter = (p.clone() * target.clone()).sum();
    let total = p.sum() + target.sum();
    let dice = (inter * 2.0 + 1.0) / (total + 1.0);
    bce + dice.neg() + 1.0
}

/// Trains an XSeg network with Adam.
pub struct XSegTrainer {
    model: XSeg,
    optimizer: ModuleOptimizer,
    lr: f64,
    step: u64,
}

impl XSegTrainer {
    /// A fresh network on `device` (an autodiff device), weights from `seed`.
    pub fn new(opts: &XSegOptions, device: &Device, lr: f64, seed: u64) -> Self {
        let _draws = crate::weights::random_draws();
        device.seed(seed);
        let model = opts.init(device);
        crate::weights::materialise(&model);
        XSegTrainer {
            model,
            optimizer: AdamConfig::new().init(),
            lr,
            step: 0,
        }
    }

    /// One step on a batch: images `[B, 3, R, R]`, target masks `[B, 1, R, R]`. Returns the loss.
    pub fn train_step(&mut self, images: Tensor<4>, masks: Tensor<4>) -> f32 {
        let loss = xseg_loss(self.model.forward(images), masks);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.lr, self.model.clone(), grads);
        self.step += 1;
        value
    }

    /// The network as trained so far.
    pub fn model(&self) -> &XSeg {
        &self.model
    }

    /// Steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Weights and optimiser state as bytes (burnpack each), for a checkpoint.
    pub fn save_state(&self) -> Result<(Vec<u8>, Vec<u8>), crate::train::TrainStateError> {
        crate::train::state_bytes(&self.model, &self.optimizer)
    }

    /// Restores what [`Self::save_state`] wrote, and the step count.
    pub fn restore_state(
        &mut self,
        model: Vec<u8>,
        optim: Vec<u8>,
        step: u64,
    ) -> Result<(), crate::train::TrainStateError> {
        let (loaded, optimizer) =
            crate::train::load_state(self.model.clone(), &self.optimizer, model, optim)?;
        self.model = loaded;
        self.optimizer = optimizer;
        self.step = step;
        Ok(())
    }
}

impl XSeg {
    /// Builds the network of `opts` on `device` with saved weights.
    pub fn load(
        opts: &XSegOptions,
        device: &Device,
        weights: Vec<u8>,
    ) -> Result<XSeg, crate::saehd::LoadError> {
        crate::weights::load_weights(|| opts.init(device), weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_a_step_that_lowers_the_loss_on_one_batch() {
        let _draws = crate::weights::random_draws();
        let device = Device::flex().autodiff();
        drop(_draws);
        let opts = XSegOptions {
            resolution: 32,
            base: 8,
        };
        let mut t = XSegTrainer::new(&opts, &device, 1e-3, 3);
        // A bright square on dark: the mask is the square.
        let (b, r) = (2, 32);
        let mut img = vec![0.1f32; b * 3 * r * r];
        let mut mask = vec![0f32; b * r * r];
        for n in 0..b {
            for y in 8..24 {
                for x in 8..24 {
                    mask[n * r * r + y * r + x] = 1.0;
                    for c in 0..3 {
                        img[((n * 3 + c) * r + y) * r + x] = 0.9;
                    }
                }
            }
        }
        let images =
            Tensor::<4>::from_data(burn::tensor::TensorData::new(img, [b, 3, r, r]), &device);
        let masks =
            Tensor::<4>::from_data(burn::tensor::TensorData::new(mask, [b, 1, r, r]), &device);
        assert_eq!(t.model().forward(images.clone()).dims(), [b, 1, r, r]);
        let first = t.train_step(images.clone(), masks.clone());
        let mut last = first;
        for _ in 0..30 {
            last = t.train_step(images.clone(), masks.clone());
        }
        println!("xseg loss {first:.3} → {last:.3}");
        assert!(last < 0.5 * first);
    }
}
