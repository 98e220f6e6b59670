//! How a batch's samples share the cores, each worker's reusable buffers, and a sample's
//! column matrix.

use rayon::prelude::*;

use super::geometry::Geometry;

/// How the samples of a batch share the cores: one sample per core with single-threaded GEMMs
/// when there are enough samples and a sample's scratch is small enough for two to share the
/// caches (no synchronisation inside a GEMM), else one sample at a time with threaded GEMMs.
pub(super) fn parallelism(samples: usize, scratch_floats: usize) -> (bool, gemm::Parallelism) {
    // conv_layers bench, 2 cores: per-core samples won 3–8 % up to 38 MB of columns per
    // sample and lost 30 % at 75 MB.
    const MAX_SCRATCH_FLOATS: usize = 12 << 20;
    if samples >= rayon::current_num_threads() && scratch_floats <= MAX_SCRATCH_FLOATS {
        (true, gemm::Parallelism::None)
    } else {
        (false, gemm::Parallelism::Rayon(0))
    }
}

/// One worker's reusable buffers.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) input: Vec<f32>,
    pub(super) output: Vec<f32>,
}

/// `work(item, scratch)` for every item, across the cores or one after another.
pub(super) fn for_each_sample<T: Send>(
    items: Vec<T>,
    across_samples: bool,
    work: impl Fn(T, &mut Scratch) + Sync,
) {
    if across_samples {
        items
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, item| work(item, scratch));
    } else {
        let mut scratch = Scratch::default();
        for item in items {
            work(item, &mut scratch);
        }
    }
}

/// `buf` resized to `len` and zeroed.
pub(super) fn zeroed(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(len, 0.0);
    buf
}

/// A sample's column matrix: the sample itself for a pointwise convolution, else `buf` filled.
pub(super) fn columns<'a>(g: &Geometry, xb: &'a [f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
    if g.is_pointwise() {
        return xb;
    }
    buf.resize(g.q() * g.l(), 0.0);
    g.im2col(xb, buf);
    buf
}
