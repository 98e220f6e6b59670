//! Training batches made on background threads in host memory, then moved to the device.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use faceswap_models::SideBatch;
use faceswap_models::burn::tensor::{Device, Tensor, TensorData};

use super::augment::{AugmentOptions, HostSide, make_side};
use super::faceset::Faceset;

/// Both sides' batch for one step, in host memory.
pub(super) struct HostBatch {
    pub(super) a: HostSide,
    pub(super) b: HostSide,
}

/// Prepares batches on background threads, in step order, a few steps ahead (bounded queues:
/// memory stays flat when the trainer is slower).
pub(super) struct BatchSource {
    pub(super) queues: Vec<Receiver<HostBatch>>,
    pub(super) next: usize,
}

pub(super) struct SideSource {
    pub(super) set: Arc<Faceset>,
    pub(super) bins: Vec<Vec<usize>>,
    pub(super) opts: AugmentOptions,
}

impl BatchSource {
    pub(super) fn start(
        a: Arc<SideSource>,
        b: Arc<SideSource>,
        seed: u64,
        first_step: u64,
        batch: usize,
        threads: usize,
    ) -> BatchSource {
        let mut queues = Vec::with_capacity(threads);
        for k in 0..threads {
            let (tx, rx): (SyncSender<HostBatch>, _) = sync_channel(2);
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut step = first_step + k as u64;
                loop {
                    let hb = HostBatch {
                        a: make_side(&a.set, &a.bins, &a.opts, seed, step, 0, batch),
                        b: make_side(&b.set, &b.bins, &b.opts, seed, step, 1, batch),
                    };
                    if tx.send(hb).is_err() {
                        return; // the run ended
                    }
                    step += threads as u64;
                }
            });
            queues.push(rx);
        }
        BatchSource { queues, next: 0 }
    }

    pub(super) fn next(&mut self) -> Option<HostBatch> {
        let q = &self.queues[self.next];
        self.next = (self.next + 1) % self.queues.len();
        q.recv().ok()
    }
}

pub(super) fn side_tensors(h: HostSide, batch: usize, r: usize, device: &Device) -> SideBatch {
    // The host buffers move into the tensors: no copy.
    let t = |v: Vec<f32>, c: usize| {
        Tensor::<4>::from_data(TensorData::new(v, [batch, c, r, r]), device)
    };
    SideBatch {
        warped: t(h.warped, 3), // [B, 3, R, R]
        target: t(h.target, 3), // [B, 3, R, R]
        mask: t(h.mask, 1),     // [B, 1, R, R]
        loss_mask: t(h.loss_mask, 1),
        em_mask: t(h.em_mask, 1),
    }
}
