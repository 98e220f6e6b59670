//! The plug-in with a hung daemon (SIGSTOP), in the test OFX host with the release bundle and
//! daemon: how long destroying a Trainer takes while its status thread waits on the daemon
//! (goal ≤ 100 ms), how long the first render waits (one deadline), how long each of the next
//! ten takes against a render of the effect set to show the source (a host-side copy, no
//! daemon call; goal: the same, no wait on the daemon), and how soon after SIGCONT the swap is back (goal ≤ 2 s). Medians of
//! five rounds.
//!
//! `cargo bench -p faceswap-tests --bench plugin_hang`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faceswap_tests::ofx_host::{HostBuffer, Instance};
use faceswap_tests::test_asset;
use faceswapd::sampling::load_image;

const BIN: &str = env!("CARGO_BIN_EXE_faceswapd-under-test");
const ROUNDS: usize = 5;
const DEADLINE_MS: i32 = 1000;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn render(inst: &Instance, src: &mut HostBuffer) -> (Duration, bool) {
    let mut dst = src.blank_like();
    let t = Instant::now();
    inst.render(0.0, src, &mut dst);
    (t.elapsed(), dst.data != src.data)
}

fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let model = faceswap_tests::tiny_photo_model(root.path(), 32, 32, 8)?;
    let photo = load_image(&test_asset("grace_hopper.jpg")?)?;
    let stride = photo.width as usize * 4;
    let mut src = HostBuffer {
        data: photo
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        width: photo.width,
        height: photo.height,
        row_bytes: -(stride as i32),
        depth: c"OfxBitDepthByte",
    };

    // SAFETY: single-threaded here; the plug-in reads the socket when it first connects.
    let (d, host) =
        unsafe { faceswap_tests::start_release_editor(root.path(), &PathBuf::from(BIN)) }?;
    let inst = host.create_instance("org.faceswappp.Faceswap")?;
    inst.set_string("model", &model.display().to_string())?;
    inst.set_int("maskMode", 4)?;
    inst.set_int("deadlineMs", 60_000)?;
    anyhow::ensure!(render(&inst, &mut src).1, "the face was not swapped");
    inst.set_int("deadlineMs", DEADLINE_MS)?;

    // Baseline: the effect set to show the source: the plug-in copies it, no daemon call.
    inst.set_int("show", 1)?;
    let healthy: Vec<Duration> = (0..10).map(|_| render(&inst, &mut src).0).collect();
    inst.set_int("show", 0)?;

    let (mut destroy, mut first, mut next, mut back) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        d.freeze()?;
        let trainer = host.create_instance("org.faceswappp.FaceswapTrainer")?;
        trainer.set_int("deadlineMs", DEADLINE_MS)?;
        trainer.press("train", 0.0)?;
        let t = Instant::now();
        let life = trainer.destroy();
        destroy.push(t.elapsed());
        first.push(render(&inst, &mut src).0);
        for _ in 0..10 {
            let (took, swapped) = render(&inst, &mut src);
            anyhow::ensure!(!swapped, "a frozen daemon swapped a frame");
            next.push(took);
        }
        d.thaw()?;
        let t = Instant::now();
        anyhow::ensure!(
            faceswap_tests::wait_until(Duration::from_secs(60), || render(&inst, &mut src).1),
            "no swap after SIGCONT"
        );
        back.push(t.elapsed());
        anyhow::ensure!(
            faceswap_tests::wait_until(Duration::from_secs(30), || {
                faceswap_tests::threads_named("fspp-") == 0
            }),
            "plug-in threads still running"
        );
        anyhow::ensure!(
            life.late_calls().is_empty(),
            "host calls after destroy: {:?}",
            life.late_calls()
        );
    }
    let base = median(healthy);
    let (first, next) = (median(first), median(next));
    println!(
        "{}x{} RGBA 8-bit, deadline {DEADLINE_MS} ms, medians of {ROUNDS} rounds",
        src.width, src.height
    );
    println!(
        "trainer destroy, daemon stopped: {:8.2} ms (goal ≤ 100 ms)",
        median(destroy)
    );
    println!(
        "first render, daemon stopped:    {:8.1} ms ({:.2}× the deadline)",
        first,
        first / DEADLINE_MS as f64
    );
    println!(
        "each of the next ten:            {:8.2} ms ({:.2}× a show-source render, {base:.2} ms)",
        next,
        next / base
    );
    println!(
        "swap back after SIGCONT:         {:8.1} ms (goal ≤ 2,000 ms)",
        median(back)
    );
    Ok(())
}
