//! Copies that bypass the cache for frames too big to stay in it.
//!
//! A plain copy into a slot first reads every destination line it is about to overwrite (the
//! write-allocate), so a frame bigger than the cache crosses the memory bus three times;
//! streaming stores skip that read. Measured on the 2-core dev VM, 33 MB RGBA f32: plain copy
//! with the hash 9.1 ms, streaming copy with the hash 6.7 ms (BENCHMARKS.md, shm round trip).
//! The standard library has no streaming copy and no kept crate offers one, hence this file.

/// Frames at least this big are copied with streaming stores: bigger than most last-level
/// cache shares, so the reader (the daemon) would fetch them from memory anyway.
pub const STREAMING_MIN_FRAME: usize = 16 * 1024 * 1024;

/// The copy for a frame of `frame_len` bytes: streaming at [`STREAMING_MIN_FRAME`] and above,
/// plain below (a small frame stays in cache for its reader).
pub fn copy_for(frame_len: usize) -> fn(&mut [u8], &[u8]) {
    if frame_len >= STREAMING_MIN_FRAME {
        copy_streaming
    } else {
        <[u8]>::copy_from_slice
    }
}

/// Copies `src` into `dst` (same length) with streaming stores where the CPU has them. Call
/// [`fence`] once after the last streaming copy, before another process may read `dst`.
pub fn copy_streaming(dst: &mut [u8], src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let len = dst.len().min(src.len());
        // Streaming stores need 16-byte aligned targets: copy the unaligned head plainly.
        let head = dst.as_ptr().align_offset(16).min(len);
        dst[..head].copy_from_slice(&src[..head]);
        let blocks = (len - head) / 64;
        // SAFETY: SSE2 is part of x86_64. Every load reads 16 bytes inside `src[head..head +
        // 64 × blocks]` and every store writes 16 bytes inside the same range of `dst`, which
        // starts 16-byte aligned; the slices are distinct (one is `&mut`).
        unsafe {
            let mut d = dst.as_mut_ptr().add(head).cast::<__m128i>();
            let mut s = src.as_ptr().add(head).cast::<__m128i>();
            for _ in 0..blocks {
                let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
                let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
                d = d.add(4);
                s = s.add(4);
            }
        }
        let tail = head + blocks * 64;
        dst[tail..len].copy_from_slice(&src[tail..len]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders earlier streaming stores before every later store (the slot's sealed hash, the
/// request to the daemon).
pub fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86_64; the fence has no memory operands.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_copy_equals_a_plain_copy_at_every_alignment_and_length() {
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut buf = vec![0u8; 4200];
        for offset in 0..17 {
            for len in [0, 1, 15, 16, 63, 64, 65, 200, 1000, 4000] {
                buf.fill(0xAA);
                copy_streaming(&mut buf[offset..offset + len], &src[3..3 + len]);
                fence();
                assert_eq!(&buf[offset..offset + len], &src[3..3 + len]);
                assert!(buf[..offset].iter().all(|b| *b == 0xAA), "head untouched");
                assert!(
                    buf[offset + len..].iter().all(|b| *b == 0xAA),
                    "tail untouched"
                );
            }
        }
    }
}
