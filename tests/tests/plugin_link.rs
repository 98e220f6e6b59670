//! The plugin's render link against a real daemon: processed frames when it runs, a prompt
//! pass-through with a clear reason when it is down, and recovery when it comes back.

use std::path::Path;
use std::time::Duration;

use faceswap_ofx::{DaemonLink, HostImage, RenderOutcome};
use faceswap_protocol::{FrameOp, PixelFormat};
use faceswap_tests::DaemonUnderTest;

const BIN: &str = env!("CARGO_BIN_EXE_faceswapd-under-test");

#[test]
fn render_processes_passes_through_when_down_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let mut d = DaemonUnderTest::start(Path::new(BIN), root.path()).unwrap();
    let (w, h) = (32u32, 8u32);
    let stride = 288; // 256-byte rows padded to 288 (hosts may use any rowbytes); RGBA 16-bit
    let src: Vec<u8> = (0..stride * h as usize).map(|i| (i % 241) as u8).collect();
    let image = HostImage {
        width: w,
        height: h,
        stride,
        format: PixelFormat::Rgba16,
        data: &src,
    };
    let mut link = DaemonLink::new(d.socket.clone(), Duration::from_millis(2000));
    let mut dst = vec![0u8; stride * h as usize];
    assert_eq!(
        link.render(&image, &mut dst, stride, FrameOp::Invert),
        RenderOutcome::Processed
    );
    let px = |b: &[u8], y: usize, x: usize, c: usize| {
        let at = y * stride + x * 8 + c * 2;
        u16::from_le_bytes([b[at], b[at + 1]])
    };
    assert_eq!(px(&dst, 3, 5, 0), u16::MAX - px(&src, 3, 5, 0));
    assert_eq!(px(&dst, 3, 5, 3), px(&src, 3, 5, 3), "alpha kept");

    d.kill9().unwrap();
    let outcome = link.render(&image, &mut dst, stride, FrameOp::Invert);
    let RenderOutcome::PassedThrough(why) = outcome else {
        panic!("expected pass-through, got {outcome:?}");
    };
    assert!(why.contains("not running"), "{why}");
    let row = w as usize * 8;
    assert_eq!(
        &dst[..row],
        &src[..row],
        "the source frame was passed through"
    );

    // The daemon is back; `retry_now` ends the link's reconnect back-off at once.
    d.restart().unwrap();
    link.retry_now();
    assert_eq!(
        link.render(&image, &mut dst, stride, FrameOp::Invert),
        RenderOutcome::Processed
    );
}
