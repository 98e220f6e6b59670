//! Buffers kept between convolutions. Winograd's transformed tensors are 2–4× an activation;
//! allocating them zeroed for every call was ≈ 18 % of a SAEHD-DF 128 px training step
//! (memset and the kernel clearing pages, train_step perf profile).

use std::sync::{Mutex, PoisonError};

/// Buffers kept at most: a convolution pass holds three at once.
const KEPT: usize = 4;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of exactly `len` floats with stale contents: the caller writes every element
/// before reading it. Give it back with [`give`].
pub(super) fn take(len: usize) -> Vec<f32> {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let fit = pool
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    let buf = fit.map(|i| pool.swap_remove(i));
    drop(pool);
    match buf {
        Some(mut buf) => {
            // Growing within the capacity zeroes only the new tail; shrinking keeps it.
            buf.resize(len, 0.0);
            buf
        }
        None => vec![0f32; len],
    }
}

/// Returns a buffer from [`take`] for later calls, keeping the largest few.
pub(super) fn give(buf: Vec<f32>) {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    pool.push(buf);
    if pool.len() > KEPT
        && let Some(smallest) = pool
            .iter()
            .enumerate()
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)
    {
        pool.swap_remove(smallest);
    }
}

/// Frees every kept buffer (after a training job).
pub(super) fn release() {
    POOL.lock().unwrap_or_else(PoisonError::into_inner).clear();
}
