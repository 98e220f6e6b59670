//! Training from the editor in the test OFX host: two trainer instances, as on two clips, one
//! in Collect A and one in Collect B, feed one project in a real daemon; "Train" returns at
//! once, the job runs in the daemon with both sides' faces, the status param reports progress
//! at the next render, the refresh param changes when a checkpoint lands, and the Faceswap
//! effect set to that project swaps with its newest model. (Own test binary: it points the
//! plug-in at its daemon through the environment.)

use std::ffi::CStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use faceswap_tests::ofx_host::{HostBuffer, Instance, OfxTestHost};
use faceswap_tests::{DaemonUnderTest, bundle_plugin, share_extractor_models, test_asset};
use faceswapd::media::{MediaError, RgbFrame, decode_video};
use faceswapd::sampling::load_image;

const TRAINER: &str = "org.faceswappp.FaceswapTrainer";

fn rgba(frame: &RgbFrame, depth: &'static CStr) -> HostBuffer {
    let stride = frame.width as usize * 4;
    let mut b = HostBuffer {
        data: vec![0; stride * frame.height as usize],
        width: frame.width,
        height: frame.height,
        row_bytes: stride as i32,
        depth,
    };
    for y in 0..frame.height as usize {
        let o = b.row_offset(y);
        for x in 0..frame.width as usize {
            let p = &frame.data[(y * frame.width as usize + x) * 3..][..3];
            b.data[o + x * 4..o + x * 4 + 4].copy_from_slice(&[p[0], p[1], p[2], 255]);
        }
    }
    b
}

fn render_all(inst: &Instance, frames: &[RgbFrame]) {
    for (t, f) in frames.iter().enumerate() {
        let mut src = rgba(f, c"OfxBitDepthByte");
        let mut dst = src.blank_like();
        assert_eq!(inst.render(t as f64, &mut src, &mut dst), 0, "frame {t}");
        assert_eq!(src.data, dst.data, "the trainer passes frames through");
        assert_eq!(inst.persistent_message(), None, "frame {t}");
    }
}

#[test]
fn collect_a_and_b_then_train_from_the_editor() {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    bundle_plugin(&plugins, false).unwrap();
    let daemon_root = root.path().join("daemon");
    share_extractor_models(&daemon_root).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = DaemonUnderTest::start(&bin, &daemon_root).unwrap();
    // SAFETY: this binary's only test; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("FACESWAPD_SOCKET", d.socket.path()) };
    let host = OfxTestHost::load(&plugins.display().to_string()).unwrap();
    // Two Trainer instances, as on two clips of a timeline: both in the default project.
    let inst_a = host.create_instance(TRAINER).unwrap();
    let inst = host.create_instance(TRAINER).unwrap();
    let project = inst.string("project").unwrap();
    assert_eq!(project, inst_a.string("project").unwrap());

    // Side A: frames 0–40 of a "clip" of the fixture stills; side B: 41 frames of the Pexels clip.
    let stills: Vec<RgbFrame> = [
        "grace_hopper.jpg",
        "eileen_collins_astronaut.png",
        "luis_pedro_coelho_mahotas.jpg",
    ]
    .iter()
    .map(|n| load_image(&test_asset(n).unwrap()).unwrap())
    .collect();
    let clip_a: Vec<RgbFrame> = (0..41).map(|i| stills[i % 3].clone()).collect();
    let mut clip_b = Vec::new();
    decode_video::<MediaError>(
        &test_asset("WolfgangLanger_Pexels.mp4").unwrap(),
        |i| (240..281).contains(&i),
        |i, _, f| {
            clip_b.push(f);
            Ok(i < 280)
        },
    )
    .unwrap();
    assert_eq!(clip_b.len(), 41);

    // In/out set with the buttons at the current frame.
    for i in [&inst_a, &inst] {
        assert_eq!(i.press("setIn", 0.0).unwrap(), 0);
        assert_eq!(i.press("setOut", 40.0).unwrap(), 0);
    }
    inst_a.set_int("collect", 1).unwrap();
    render_all(&inst_a, &clip_a);
    inst.set_int("collect", 2).unwrap();
    render_all(&inst, &clip_b);
    inst.set_int("collect", 0).unwrap();
    let faces = |side: &str| {
        std::fs::read_dir(
            daemon_root
                .join("data/faceswappp/projects")
                .join(&project)
                .join(side)
                .join("faces"),
        )
        .map_or(0, |d| d.count())
    };
    println!(
        "collected: A {} faces, B {} faces",
        faces("faces_a"),
        faces("faces_b")
    );
    assert!(faces("faces_a") >= 40 && faces("faces_b") >= 40);

    // Train: the action returns at once; the daemon trains; status and refresh follow.
    inst.set_int("resolution", 32).unwrap();
    inst.set_int("steps", 6).unwrap();
    let t = Instant::now();
    assert_eq!(inst.press("train", 40.0).unwrap(), 0);
    // Not a timed assertion (machines are noisy): the button returned before any training.
    println!(
        "Train button returned in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let right_after = inst.string("status").unwrap();
    assert!(!right_after.contains(" done"), "{right_after}");
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        // The status thread never sets params itself (OFX allows that only inside actions): a
        // render, as the host playing the timeline makes, shows what it learned.
        render_all(&inst, &clip_a[..1]);
        let status = inst.string("status").unwrap();
        if seen.last() != Some(&status) {
            println!("status: {status}");
            seen.push(status.clone());
        }
        let refresh = inst.double("refresh").unwrap();
        if status.contains(" done") && refresh > 0.0 {
            println!("refresh param: {refresh}");
            // The newest checkpoint's step, not clamped as Resolve clamps doubles without ranges.
            assert_eq!(refresh, 6.0);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "training did not finish: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen.iter().any(|s| s.contains("A: ") && s.contains("job")),
        "{seen:?}"
    );
    let model = daemon_root
        .join("data/faceswappp/projects")
        .join(&project)
        .join("model");
    assert!(
        model.join("checkpoint.fsppm").is_file(),
        "no checkpoint in {}",
        model.display()
    );

    // The Faceswap effect set to the project renders with its newest model.
    let swap = host.create_instance("org.faceswappp.Faceswap").unwrap();
    swap.set_string("project", &project).unwrap();
    swap.set_int("maskMode", 4).unwrap(); // dst (landmark hull): a 6-step model's masks are weak
    swap.set_int("deadlineMs", 60_000).unwrap();
    let mut src = rgba(&clip_b[0], c"OfxBitDepthByte");
    let mut dst = src.blank_like();
    assert_eq!(swap.render(0.0, &mut src, &mut dst), 0);
    assert_eq!(swap.persistent_message(), None);
    let changed = src
        .data
        .chunks_exact(4)
        .zip(dst.data.chunks_exact(4))
        .filter(|(a, b)| a != b)
        .count();
    println!("swap effect on project {project}: {changed} pixels changed");
    assert!(changed > 100, "the project's model swapped nothing");
}
