//! Extraction throughput on the Pexels clip (640×360, 472 frames): decode + detect + landmarks +
//! align on the CPU, single worker and one worker per core; against the same MediaPipe models
//! run by Python's `mediapipe` on the same frames in the same run, when Python has it.
//!
//! `cargo bench -p faceswap-tests --bench extract_fps`. The Python side uses `$FSPP_BENCH_PYTHON`,
//! else a private venv `<cache>/tools/mediapipe-bench` with the pinned `mediapipe==0.10.14`
//! (created on first run from PyPI); it is skipped with a note when that cannot be had.

use std::process::Command;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use faceswapd::extract::image::Pyramid;
use faceswapd::extract::pipeline::{ExtractSettings, Extractor, StageTimings};
use faceswapd::extract::track::{Smoother, Smoothing};
use faceswapd::media::{MediaError, RgbFrame, decode_video};
use faceswapd::paths::Dirs;

const PYTHON_SIDE: &str = r#"
import sys, time, cv2, mediapipe as mp
cap = cv2.VideoCapture(sys.argv[1])
frames = []
while True:
    ok, f = cap.read()
    if not ok:
        break
    frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=False)
found = 0
t = time.perf_counter()
for f in frames:
    r = mesh.process(f)
    found += len(r.multi_face_landmarks or [])
dt = time.perf_counter() - t
print(f"{len(frames)} {found} {dt}")
"#;

fn main() -> anyhow::Result<()> {
    let dirs = Dirs::resolve()?;
    let models = faceswapd::extract::default_models(&dirs)?;
    let video = faceswap_tests::test_asset("WolfgangLanger_Pexels.mp4")?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Decode alone.
    let t = Instant::now();
    let mut frames: Vec<RgbFrame> = Vec::new();
    decode_video::<MediaError>(
        &video,
        |_| true,
        |_, _, f| {
            frames.push(f);
            Ok(true)
        },
    )?;
    let decode_s = t.elapsed().as_secs_f64();
    let n = frames.len();

    // One worker, frames already in memory (per-stage timings).
    let mut ex = Extractor::load(&models, ExtractSettings::default())?;
    let mut timings = StageTimings::default();
    let t = Instant::now();
    let mut faces = 0;
    for f in &frames {
        faces += ex.process(&Pyramid::new(f.clone()), &mut timings)?.len();
    }
    let single_s = t.elapsed().as_secs_f64();

    // End to end, detector on every frame: a decoding thread feeding one extractor per core.
    let t = Instant::now();
    let (tx, rx) = sync_channel::<RgbFrame>(8);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let rx = std::sync::Arc::clone(&rx);
        let models = models.clone();
        handles.push(std::thread::spawn(move || -> anyhow::Result<usize> {
            let mut ex = Extractor::load(&models, ExtractSettings::default())?;
            let mut found = 0;
            loop {
                let next = rx.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.recv();
                let Ok(frame) = next else { break };
                found += ex
                    .process(&Pyramid::new(frame), &mut StageTimings::default())?
                    .len();
            }
            Ok(found)
        }));
    }
    decode_video::<MediaError>(&video, |_| true, |_, _, f| Ok(tx.send(f).is_ok()))?;
    drop(tx);
    let mut detect_faces = 0;
    for h in handles {
        detect_faces += h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let detect_s = t.elapsed().as_secs_f64();

    // End to end with tracking (as `faceswapd extract` runs a video): each worker decodes and
    // follows its own contiguous part of the clip.
    let t = Instant::now();
    let chunk = n.div_ceil(workers);
    let mut handles = Vec::new();
    for w in 0..workers {
        let models = models.clone();
        let video = video.clone();
        let range = w * chunk..((w + 1) * chunk).min(n);
        handles.push(std::thread::spawn(move || -> anyhow::Result<usize> {
            let mut ex = Extractor::load(&models, ExtractSettings::default())?;
            let mut smoother = Smoother::new(Some(Smoothing::default()), 24.0);
            let (mut found, mut previous, mut since) = (0, Vec::new(), 0u32);
            let mut err = None;
            decode_video::<MediaError>(
                &video,
                |i| range.contains(&(i as usize)),
                |_, _, f| {
                    let pyr = Pyramid::new(f);
                    match ex.process_tracked(
                        &pyr,
                        &previous,
                        &mut since,
                        &mut StageTimings::default(),
                    ) {
                        Ok(faces) => {
                            // As extraction does: smooth, then align from the smoothed points.
                            for (face, s) in faces.iter().zip(smoother.smooth(&faces)) {
                                let _ = ex.realign(pyr.base(), face, &s.landmarks);
                                found += 1;
                            }
                            previous = faces;
                            Ok(true)
                        }
                        Err(e) => {
                            err = Some(e);
                            Ok(false)
                        }
                    }
                },
            )?;
            if let Some(e) = err {
                return Err(e.into());
            }
            Ok(found)
        }));
    }
    let mut tracked_faces = 0;
    for h in handles {
        tracked_faces += h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let tracked_s = t.elapsed().as_secs_f64();

    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "extraction on {} ({n} frames, {}x{})",
        video.display(),
        frames[0].width,
        frames[0].height
    );
    println!(
        "decode only:                                {:>7.1} frames/s",
        n as f64 / decode_s
    );
    println!(
        "1 worker, detector every frame (decoded):   {:>7.1} frames/s  [detect {:.1} ms, landmarks {:.1} ms, align {:.2} ms per frame; {faces} faces]",
        n as f64 / single_s,
        ms(timings.detect),
        ms(timings.landmarks),
        ms(timings.align)
    );
    println!(
        "decode + {workers} workers, detector every frame: {:>7.1} frames/s  [{detect_faces} faces]",
        n as f64 / detect_s
    );
    let ours = n as f64 / tracked_s;
    println!(
        "decode + {workers} workers, tracking (default):  {ours:>7.1} frames/s  [{tracked_faces} faces]  (goal ≥ 60)"
    );
    println!(
        "per-frame cost, tracking + smoothing / detector every frame: {:.2}  (goal ≤ 0.6)",
        tracked_s / detect_s
    );

    let python = match std::env::var("FSPP_BENCH_PYTHON") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) => faceswap_tests::bench_venv("mediapipe-bench", "mediapipe==0.10.14")?,
    };
    let python = python.display().to_string();
    let out = Command::new(&python)
        .arg("-c")
        .arg(PYTHON_SIDE)
        .arg(&video)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [frames_py, faces_py, secs] = v[..] {
                let py = frames_py / secs;
                println!(
                    "python mediapipe FaceMesh (same models, detection + landmarks, 1 process): {py:>7.1} frames/s  [{faces_py} faces]"
                );
                println!(
                    "ratio ours (end to end) / python: {:.2}x  (goal ≥ 2x)",
                    ours / py
                );
            }
        }
        Ok(o) => println!(
            "python side skipped ({python}: {})",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        ),
        Err(e) => println!("python side skipped ({python}: {e})"),
    }
    Ok(())
}
