//! Merge throughput at 1080p: one face per frame, mkl colour transfer, erode + blur of the
//! mask, overlay — Faceswap++'s merge against the same steps written with NumPy following
//! DFL's formulas (`reference/merge_dfl_numpy.py`), run in the same process's script; ratio
//! printed. The model is out of the loop: both sides get the same canned prediction.
//!
//! `cargo bench -p faceswap-tests --bench merge_fps`. The Python side uses
//! `$FSPP_BENCH_PYTHON`, else a private venv `<cache>/tools/numpy-bench` with the pinned
//! `numpy==2.1.3` (created on first run from PyPI); skipped with a note when that fails.

use std::process::Command;
use std::time::Instant;

use faceswapd::extract::pipeline::{Extractor, StageTimings};
use faceswapd::faceset::face::ExtractSettings;
use faceswapd::geometry::Centering;
use faceswapd::media::{MediaError, RgbFrame, decode_video};
use faceswapd::merge::{
    ColorTransfer, FacePredictor, MaskMode, MergeMode, MergeSettings, Motion, Plane, Prediction,
    Rgb, TargetFace, aligned_face, face_matrix, merge_frame,
};
use faceswapd::paths::Dirs;
use faceswapd::sampling::Pyramid;

const R: usize = 128;
const ERODE: i32 = 20;
const BLUR: u32 = 40;

/// The same prediction every frame: the destination face tinted, with soft hull-like masks.
struct Canned(Prediction);

impl FacePredictor for Canned {
    fn resolution(&self) -> usize {
        R
    }
    fn centering(&self) -> Centering {
        Centering::DflWholeFace
    }
    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
        Ok(faces.iter().map(|_| self.0.clone()).collect())
    }
}

fn main() -> anyhow::Result<()> {
    // A real 1080p frame: the Pexels clip's frame 300 scaled up 3×.
    let video = faceswap_tests::test_asset("WolfgangLanger_Pexels.mp4")?;
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
    let frame = RgbFrame {
        width: 1920,
        height: 1080,
        data: img.into_raw(),
    };
    let dirs = Dirs::resolve()?;
    let models = faceswapd::extract::default_models(&dirs)?;
    let mut ex = Extractor::load(&models, ExtractSettings::default())?;
    let faces = ex.process(&Pyramid::new(frame.clone()), &mut StageTimings::default())?;
    let lm = faces
        .first()
        .ok_or_else(|| anyhow::anyhow!("no face found in the 1080p frame"))?
        .landmarks68();
    let mat = face_matrix(&lm, R, Centering::DflWholeFace);
    let dst = aligned_face(&Pyramid::new(frame.clone()), &mat, R)
        .ok_or_else(|| anyhow::anyhow!("degenerate matrix"))?;
    // Masks: a soft disc (predicted) and a slightly smaller one (destination).
    let disc = |radius: f32| Plane {
        width: R,
        height: R,
        data: (0..R * R)
            .map(|i| {
                let (x, y) = ((i % R) as f32 - 64.0, (i / R) as f32 - 70.0);
                ((radius - (x * x + y * y).sqrt()) / 6.0).clamp(0.0, 1.0)
            })
            .collect(),
    };
    let pred = Prediction {
        face: dst
            .iter()
            .map(|p| [p[0] * 0.9, p[1] * 1.05, p[2]])
            .collect(),
        face_mask: disc(52.0),
        dst_mask: disc(48.0),
    };
    let settings = MergeSettings {
        mode: MergeMode::Overlay,
        mask_mode: MaskMode::LearnedPrdTimesDst,
        color: ColorTransfer::Mkl,
        erode: ERODE,
        blur: BLUR,
        ..MergeSettings::default()
    };
    let mut model = Canned(pred.clone());
    let face_px = 1.0 / mat.scale() * R as f64;
    println!(
        "1080p frame, one face ~{face_px:.0} px across the {R} px crop; mkl + erode {ERODE} + blur {BLUR} + overlay"
    );
    let target = [TargetFace {
        landmarks: lm,
        motion: Motion::default(),
        mask: None,
    }];
    merge_frame(&frame, &target, &mut model, &settings).map_err(|e| anyhow::anyhow!(e))?;
    let n = 30;
    let t = Instant::now();
    for _ in 0..n {
        merge_frame(&frame, &target, &mut model, &settings).map_err(|e| anyhow::anyhow!(e))?;
    }
    let rust_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!(
        "Faceswap++ merge:      {rust_ms:7.1} ms/frame  {:6.1} frames/s",
        1000.0 / rust_ms
    );

    // The NumPy side gets the same frame, matrix and prediction.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("frame.u8"), &frame.data)?;
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let flat: Vec<f32> = pred.face.iter().flat_map(|p| *p).collect();
    std::fs::write(dir.path().join("pred.f32"), f32s(&flat))?;
    std::fs::write(dir.path().join("prd_mask.f32"), f32s(&pred.face_mask.data))?;
    std::fs::write(dir.path().join("dst_mask.f32"), f32s(&pred.dst_mask.data))?;
    // OpenCV's pixel grid has centres at integers; ours at +0.5: same map, shifted.
    let m = mat.0;
    let tx = m[0][2] + 0.5 * (m[0][0] + m[0][1]) - 0.5;
    let ty = m[1][2] + 0.5 * (m[1][0] + m[1][1]) - 0.5;
    std::fs::write(
        dir.path().join("params.txt"),
        format!(
            "1080 1920 {R} {ERODE} {BLUR} {} {} {tx} {} {} {ty}",
            m[0][0], m[0][1], m[1][0], m[1][1]
        ),
    )?;
    let python = match std::env::var("FSPP_BENCH_PYTHON") {
        Ok(p) => p.into(),
        Err(_) => faceswap_tests::bench_venv("numpy-bench", "numpy==2.1.3")?,
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/reference/merge_dfl_numpy.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .arg(dir.path())
        .arg("5")
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let np_ms: f64 = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("unexpected output: {text}"))?;
            println!(
                "NumPy (DFL's formulas): {np_ms:7.1} ms/frame  {:6.1} frames/s",
                1000.0 / np_ms
            );
            println!(
                "ratio: Faceswap++ is {:.1}× the NumPy merge's frames/s",
                np_ms / rust_ms
            );
        }
        Ok(o) => println!(
            "NumPy side failed, comparison skipped: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!(
            "no Python at {}: comparison skipped ({e})",
            python.display()
        ),
    }
    Ok(())
}
