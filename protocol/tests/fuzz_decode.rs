//! Fuzzing message decoding with proptest: random bytes, random frames, and mutated valid
//! messages must never panic, and no single allocation may exceed the control-message limit.
//!
//! Runs 100 000 cases per property by default (`FUZZ_CASES` overrides). This file holds one test
//! so that the counting allocator sees only the decoder's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use faceswap_protocol::{
    FrameOp, JobSpec, MAX_CONTROL_MESSAGE, Request, Response, decode_payload, encode_payload,
    read_frame,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Records the largest single allocation.
struct PeakAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarding a pointer from `alloc` with its layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn samples() -> Vec<Vec<u8>> {
    let reqs = [
        Request::Status,
        Request::ListJobs,
        Request::ShowJob { id: 42 },
        Request::CancelJob { id: u64::MAX },
        Request::SubmitJob {
            spec: JobSpec::ExtractFrames(faceswap_protocol::ExtractFramesJob {
                input: "/a/video.mp4".into(),
                output_dir: "/a/out".into(),
                every_nth: 3,
            }),
        },
        Request::ProcessFrame {
            slot: "/run/user/1000/faceswappp/slots/slot-1-2-3.fsslot".into(),
            op: FrameOp::Invert,
        },
    ];
    reqs.iter().map(|r| encode_payload(r).unwrap()).collect()
}

/// Decodes `bytes` every way a peer's bytes are decoded: as a body and as a framed stream.
fn decode_all_ways(bytes: &[u8]) {
    let _ = decode_payload::<Request>(bytes);
    let _ = decode_payload::<Response>(bytes);
    let _ = read_frame::<_, Request>(&mut &bytes[..]);
    let _ = read_frame::<_, Response>(&mut &bytes[..]);
}

#[test]
fn decoding_never_panics_or_overallocates() {
    let limit = MAX_CONTROL_MESSAGE as usize;
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });

    // 1. Arbitrary bytes, biased short.
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            LARGEST.store(0, Ordering::Relaxed);
            decode_all_ways(&bytes);
            prop_assert!(LARGEST.load(Ordering::Relaxed) <= limit + 64);
            Ok(())
        })
        .unwrap();

    // 2. Valid messages with random byte flips, truncations and insertions.
    let valid = samples();
    let strategy = (
        0..valid.len(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        any::<Option<usize>>(),
    );
    runner
        .run(&strategy, |(which, flips, cut)| {
            let mut bytes = valid[which].clone();
            for (at, v) in flips {
                let i = at % (bytes.len() + 1);
                if v & 1 == 0 && i < bytes.len() {
                    bytes[i] = v;
                } else {
                    bytes.insert(i, v);
                }
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            LARGEST.store(0, Ordering::Relaxed);
            decode_all_ways(&bytes);
            let mut framed = (bytes.len() as u32).to_le_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            let _ = read_frame::<_, Request>(&mut framed.as_slice());
            prop_assert!(LARGEST.load(Ordering::Relaxed) <= limit + 64);
            Ok(())
        })
        .unwrap();

    // 3. Length prefixes anywhere in u32 with short bodies: never allocate the announced size
    //    beyond the limit.
    runner
        .run(
            &(any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)),
            |(len, body)| {
                let mut framed = len.to_le_bytes().to_vec();
                framed.extend_from_slice(&body);
                LARGEST.store(0, Ordering::Relaxed);
                let _ = read_frame::<_, Request>(&mut framed.as_slice());
                prop_assert!(LARGEST.load(Ordering::Relaxed) <= limit + 64);
                Ok(())
            },
        )
        .unwrap();
}
