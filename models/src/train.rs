//! The SAEHD optimisation step: loss on both sides, gradient accumulation over micro-batches,
//! one AdaBelief step with the scheduled learning rate. Data, augmentation, checkpoints and the
//! job around it live with the training engine.

use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use crate::losses::saehd_image_loss;
use crate::optim::{AdaBeliefConfig, LrSchedule};
use crate::saehd::{Saehd, SaehdOptions};

/// A SAEHD model with its optimiser state and step counter.
pub struct SaehdTrainer {
    model: Saehd,
    optimizer: ModuleOptimizer,
    schedule: LrSchedule,
    resolution: usize,
    micro_batches: usize,
    step: u64,
}

impl SaehdTrainer {
    /// A fresh model on `device` (an autodiff device: `Device::flex().autodiff()` on the CPU).
    pub fn new(
        opts: &SaehdOptions,
        device: &Device,
        optimizer: &AdaBeliefConfig,
        schedule: LrSchedule,
        micro_batches: usize,
    ) -> Self {
        SaehdTrainer {
            model: opts.init(device),
            optimizer: optimizer.init(),
            schedule,
            resolution: opts.resolution,
            micro_batches: micro_batches.max(1),
            step: 0,
        }
    }

    /// The model as trained so far.
    pub fn model(&self) -> &Saehd {
        &self.model
    }

    /// Optimiser steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// One optimiser step on a batch of each side (`[B, 3, R, R]`, values in [0, 1]); the batch
    /// is split into the configured number of micro-batches whose gradients are accumulated.
    /// Returns the mean loss (A + B) over the batch.
    pub fn train_step(&mut self, a: Tensor<4>, b: Tensor<4>) -> f32 {
        let batch = a.dims()[0];
        let n = self.micro_batches.min(batch).max(1);
        let per = batch / n;
        let mut acc = GradientsAccumulator::new();
        let mut total = 0.0f32;
        for k in 0..n {
            let len = if k + 1 == n { batch - per * k } else { per };
            let (ma, mb) = (
                a.clone().narrow(0, per * k, len),
                b.clone().narrow(0, per * k, len),
            );
            let out = self.model.forward(ma.clone(), mb.clone());
            // Each micro-batch's mean loss weighted by its share of the batch.
            let loss = (saehd_image_loss(out.a.0, ma, self.resolution)
                + saehd_image_loss(out.b.0, mb, self.resolution))
            .mul_scalar(len as f32 / batch as f32);
            total += loss.clone().into_scalar::<f32>();
            acc.accumulate(
                &self.model,
                GradientsParams::from_grads(loss.backward(), &self.model),
            );
        }
        let lr = self.schedule.at(self.step);
        self.model = self.optimizer.step(lr, self.model.clone(), acc.grads());
        self.step += 1;
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn loss_falls_on_a_fixed_pair_with_accumulation() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let opts = SaehdOptions::parse("df", 32, 16, 4, 4, 2).unwrap();
        let schedule = LrSchedule {
            base: 1e-3,
            warmup: 2,
            cosine: None,
        };
        let mut trainer =
            SaehdTrainer::new(&opts, &device, &AdaBeliefConfig::default(), schedule, 2);
        // Smooth gradients as stand-in faces: side A horizontal, side B vertical.
        let img = |vertical: bool| {
            let mut d = Vec::with_capacity(2 * 3 * 32 * 32);
            for _ in 0..2 {
                for c in 0..3 {
                    for y in 0..32 {
                        for x in 0..32 {
                            let t = if vertical { y } else { x } as f32 / 31.0;
                            d.push(0.2 + 0.6 * t * (c as f32 + 1.0) / 3.0);
                        }
                    }
                }
            }
            Tensor::<4>::from_data(TensorData::new(d, [2, 3, 32, 32]), &device)
        };
        let (a, b) = (img(false), img(true));
        let first = trainer.train_step(a.clone(), b.clone());
        let mut last = first;
        for _ in 0..39 {
            last = trainer.train_step(a.clone(), b.clone());
        }
        assert_eq!(trainer.step(), 40);
        assert!(
            last.is_finite() && last < 0.6 * first,
            "loss {first} -> {last}"
        );
    }
}
