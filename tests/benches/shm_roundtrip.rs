//! Frame round trip through a real daemon and shared memory, against 2× a plain memcpy of the
//! same frame measured in the same run.
//!
//! `cargo bench -p faceswap-tests --bench shm_roundtrip` (release). One round trip is what the
//! OFX render path does: copy the host's frame into the slot and seal it (content hash), ask the
//! daemon to process it, copy the result out. `Passthrough` is the bare transport; `Verify`
//! adds the daemon re-hashing every pixel; `Invert` has the daemon read every pixel (checking
//! the hash), write a result and seal it, as a swap does. Goal: both ≤ 1.5× of 2× memcpy.
//! The slot copies use streaming stores for big frames, so the last column also compares
//! `Invert` with two streaming copies, the fastest two copies one core does here.

use std::path::Path;
use std::time::{Duration, Instant};

use faceswap_protocol::stream_copy::{copy_streaming, fence};
use faceswap_protocol::{FrameOp, FrameSlot, PixelFormat, Request, Response};
use faceswap_tests::DaemonUnderTest;

const BIN: &str = env!("CARGO_BIN_EXE_faceswapd-under-test");

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    // Slots live where the product puts them: in tmpfs ($XDG_RUNTIME_DIR or /dev/shm), not in
    // a disk-backed temp folder whose dirty pages the kernel writes back.
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let d = DaemonUnderTest::start(Path::new(BIN), root.path())?;
    let mut c = d.connect()?;
    let slot_dir = d.socket.slot_dir()?;
    println!("shm round trip vs 2x memcpy (RGBA f32; medians)");
    println!(
        "{:<6} {:>7} {:>10} {:>10} {:>10} {:>12} {:>7} {:>12} {:>7} {:>12} {:>7} {:>9}",
        "frame",
        "MB",
        "memcpy ms",
        "2x memcpy",
        "2x stream",
        "passthrough",
        "ratio",
        "verify",
        "ratio",
        "invert",
        "ratio",
        "vs stream"
    );
    for (label, w, h, iters) in [("1080p", 1920u32, 1080u32, 40), ("4K", 3840, 2160, 16)] {
        let len = w as usize * h as usize * PixelFormat::RgbaF32.bytes_per_pixel();
        let src: Vec<u8> = (0..len)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut mid = vec![1u8; len];
        let mut dst = vec![2u8; len];
        let mut slot = FrameSlot::create(&slot_dir, len)?;
        let row = w as usize * 16;
        let mut one = Vec::new();
        let mut two = Vec::new();
        let mut streamed = Vec::new();
        let mut trip = Vec::new();
        let mut verify = Vec::new();
        let mut invert = Vec::new();
        for i in 0..iters + 3 {
            let t = Instant::now();
            mid.copy_from_slice(&src);
            let t1 = t.elapsed();
            dst.copy_from_slice(&mid);
            let t2 = t.elapsed();
            std::hint::black_box((&mid, &dst));
            let t = Instant::now();
            copy_streaming(&mut mid, &src);
            copy_streaming(&mut dst, &mid);
            fence();
            let ts = t.elapsed();
            std::hint::black_box((&mid, &dst));

            let mut round_trip = |op: FrameOp, dst: &mut [u8]| -> anyhow::Result<Duration> {
                let t = Instant::now();
                slot.write_rows(w, h, PixelFormat::RgbaF32, &src, row)?;
                let reply = c.call(&Request::ProcessFrame {
                    slot: slot.path().display().to_string(),
                    op,
                })?;
                slot.read_rows(dst, row)?;
                let rt = t.elapsed();
                anyhow::ensure!(
                    matches!(reply, Response::FrameDone { .. }),
                    "daemon refused: {reply:?}"
                );
                Ok(rt)
            };
            let rt = round_trip(FrameOp::Passthrough, &mut dst)?;
            let rv = round_trip(FrameOp::Verify, &mut dst)?;
            anyhow::ensure!(dst == src, "round trip changed the pixels");
            let ri = round_trip(FrameOp::Invert, &mut dst)?;
            if i >= 3 {
                one.push(t1);
                two.push(t2);
                streamed.push(ts);
                trip.push(rt);
                verify.push(rv);
                invert.push(ri);
            }
        }
        let (one, two, streamed, trip, verify, invert) = (
            median(one),
            median(two),
            median(streamed),
            median(trip),
            median(verify),
            median(invert),
        );
        println!(
            "{label:<6} {:>7.1} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>6.2}x {:>12.2} {:>6.2}x {:>12.2} {:>6.2}x {:>8.2}x",
            len as f64 / 1e6,
            ms(one),
            ms(two),
            ms(streamed),
            ms(trip),
            trip.as_secs_f64() / two.as_secs_f64(),
            ms(verify),
            verify.as_secs_f64() / two.as_secs_f64(),
            ms(invert),
            invert.as_secs_f64() / two.as_secs_f64(),
            invert.as_secs_f64() / streamed.as_secs_f64()
        );
    }
    println!("goal: passthrough and invert round trips <= 1.5x of 2x memcpy");
    Ok(())
}
