//! The swap effect at 1080p through the whole editor path — test OFX host → plug-in → shared
//! memory → warm daemon (find faces + merge) → back — against the same swap run inside one
//! process without IPC (`FrameSwapper`, what the daemon runs per frame), in the same run;
//! ratio printed (goal ≤ 1.2×), plus ms/frame.
//!
//! `cargo bench -p faceswap-tests --bench ofx_render` (release plug-in, daemon and host).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faceswap_models::ComputeDevice;
use faceswap_protocol::{ConvertSettings, PixelFormat, SlotHeader, SwapSettings, SwapTarget};
use faceswap_tests::ofx_host::HostBuffer;
use faceswap_tests::test_asset;
use faceswapd::media::{MediaError, decode_video};
use faceswapd::merge::render::FrameSwapper;

const BIN: &str = env!("CARGO_BIN_EXE_faceswapd-under-test");
const ITERS: usize = 12;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    // A small model: the bench measures the path around it, not its quality.
    let model = faceswap_tests::tiny_photo_model(root.path(), 64, 64, 16)?;

    // A 1080p frame: the Pexels clip's frame 300 scaled 3×, RGBA 8-bit, bottom row first.
    let video = test_asset("WolfgangLanger_Pexels.mp4")?;
    let mut small = None;
    decode_video::<MediaError>(
        &video,
        |i| i == 300,
        |_, _, f| {
            small = Some(f);
            Ok(false)
        },
    )?;
    let small = small.ok_or_else(|| anyhow::anyhow!("frame 300 missing"))?;
    let img = image::RgbImage::from_raw(small.width, small.height, small.data)
        .ok_or_else(|| anyhow::anyhow!("bad frame"))?;
    let img = image::imageops::resize(&img, 1920, 1080, image::imageops::FilterType::Triangle);
    let (w, h) = (1920usize, 1080usize);
    let stride = w * 4;
    let mut rgba = vec![0u8; stride * h];
    for y in 0..h {
        let row = (h - 1 - y) * stride;
        for x in 0..w {
            let p = img.get_pixel(x as u32, y as u32).0;
            rgba[row + x * 4..row + x * 4 + 4].copy_from_slice(&[p[0], p[1], p[2], 255]);
        }
    }
    let settings = SwapSettings {
        model_dir: model.display().to_string(),
        project: None,
        target: SwapTarget::Largest,
        bottom_up: true,
        show: faceswap_protocol::SwapView::Result,
        merge: ConvertSettings::default(),
    };

    // In one process, no IPC: what the daemon does with a frame.
    let dirs = faceswapd::paths::Dirs::resolve().expect("a home folder");
    let runtime = faceswapd::runtime::Runtime::load(dirs).expect("the daemon's config");
    let mut swapper = FrameSwapper::new(ComputeDevice::CPU, runtime);
    let header = SlotHeader {
        width: w as u32,
        height: h as u32,
        stride: stride as u32,
        format: PixelFormat::Rgba8,
        content_hash: 0,
    };
    let mut px = rgba.clone();
    let report = swapper
        .swap(&mut px, &header, &settings)
        .map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(report.faces_swapped == 1, "no face swapped: {report:?}");
    let mut direct = Vec::new();
    for _ in 0..ITERS {
        px.copy_from_slice(&rgba);
        let t = Instant::now();
        swapper
            .swap(&mut px, &header, &settings)
            .map_err(|e| anyhow::anyhow!(e))?;
        direct.push(t.elapsed());
    }

    // The editor path: bundle (release), daemon, host, plug-in.
    // SAFETY: single-threaded here; the plug-in reads the socket when it first connects.
    let (_daemon, host) =
        unsafe { faceswap_tests::start_release_editor(root.path(), &PathBuf::from(BIN)) }?;
    let inst = host.create_instance("org.faceswappp.Faceswap")?;
    inst.set_string("model", &model.display().to_string())?;
    inst.set_int("deadlineMs", 120_000)?;
    let mut src = HostBuffer {
        data: rgba.clone(),
        width: w as u32,
        height: h as u32,
        row_bytes: stride as i32,
        depth: c"OfxBitDepthByte",
    };
    let mut dst = HostBuffer {
        data: vec![0; rgba.len()],
        width: w as u32,
        height: h as u32,
        row_bytes: stride as i32,
        depth: c"OfxBitDepthByte",
    };
    anyhow::ensure!(inst.render(0.0, &mut src, &mut dst) == 0, "render failed");
    if let Some(m) = inst.persistent_message() {
        anyhow::bail!("the plug-in passed the frame through: {m}");
    }
    anyhow::ensure!(
        dst.data == px,
        "the plug-in's result differs from the in-process swap"
    );
    let mut through = Vec::new();
    for i in 0..ITERS {
        let t = Instant::now();
        inst.render(i as f64, &mut src, &mut dst);
        through.push(t.elapsed());
    }
    let (a, b) = (median(direct), median(through));
    println!(
        "1080p RGBA 8-bit, one face, 64 px model, default merge (rct, learned masks); medians of {ITERS}"
    );
    println!("in-process swap (no IPC):      {a:7.1} ms/frame");
    println!("through OFX host + daemon:     {b:7.1} ms/frame");
    println!("ratio: {:.2}× (goal ≤ 1.2×)", b / a);
    Ok(())
}
