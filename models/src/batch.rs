//! One side's training batch: the warped input, the target and its masks.

use burn::tensor::{Device, Tensor};

/// One side's training batch, all `[B, C, R, R]` with values in [0, 1].
#[derive(Debug, Clone)]
pub struct SideBatch {
    /// Network input: the augmented face with random warp (`[B, 3, R, R]`).
    pub warped: Tensor<4>,
    /// What the decoder should reproduce: the same face and transform, no warp.
    pub target: Tensor<4>,
    /// Full-face mask of the target (`[B, 1, R, R]`), the learned mask's target.
    pub mask: Tensor<4>,
    /// DFL's `clip(blur(mask, R/32), 0, 0.5)·2`: where the image loss counts when masked.
    pub loss_mask: Tensor<4>,
    /// Eyes-and-mouth priority weights (`[B, 1, R, R]`).
    pub em_mask: Tensor<4>,
}

impl SideBatch {
    /// A batch of unwarped faces `[B, 3, R, R]` that fill the frame: the target is the input and
    /// every mask is 1 (tests and benches).
    pub fn unmasked(faces: Tensor<4>) -> SideBatch {
        let [b, _, h, w] = faces.dims();
        let ones = Tensor::<4>::ones([b, 1, h, w], &faces.device());
        SideBatch {
            warped: faces.clone(),
            target: faces,
            mask: ones.clone(),
            loss_mask: ones.clone(),
            em_mask: ones,
        }
    }

    pub(crate) fn narrow(&self, start: usize, len: usize) -> SideBatch {
        self.map(|t| t.narrow(0, start, len))
    }

    pub(crate) fn to_device(&self, device: &Device) -> SideBatch {
        self.map(|t| t.to_device(device))
    }

    fn map(&self, f: impl Fn(Tensor<4>) -> Tensor<4>) -> SideBatch {
        SideBatch {
            warped: f(self.warped.clone()),
            target: f(self.target.clone()),
            mask: f(self.mask.clone()),
            loss_mask: f(self.loss_mask.clone()),
            em_mask: f(self.em_mask.clone()),
        }
    }

    pub(crate) fn batch_size(&self) -> usize {
        self.warped.dims()[0]
    }
}
