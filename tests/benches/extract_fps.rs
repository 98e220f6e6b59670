//! Extraction throughput on the Pexels clip (640×360, 472 frames): decode + detect + landmarks +
//! align on the CPU, single worker and one worker per core; against the same MediaPipe models
//! run by Python's `mediapipe` on the same frames in the same run, when Python has it.
//!
//! `cargo bench -p faceswap-tests --bench extract_fps`. The Python side uses `$FSPP_BENCH_PYTHON`,
//! else a private venv `<cache>/tools/mediapipe-bench` with the pinned `mediapipe==0.10.14`
//! (created on first run from PyPI); it is skipped with a note when that cannot be had.
//! Timed runs are repeated (`FSPP_BENCH_REPEATS`, default 3) and the best of each is kept, on
//! both sides: the machine is shared and noisy. `FSPP_BENCH_WORKERS` overrides one per core.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use faceswap_models::facemesh::FACEMESH_SIZE;
use faceswap_models::{BlazeFace, BlazeFaceKind, FaceMesh, IBUG68_FROM_FACEMESH};
use faceswapd::extract::pipeline::{Extractor, ModelFiles, StageTimings};
use faceswapd::faceset::face::ExtractSettings;
use faceswapd::geometry::MEAN_FACE_51;
use faceswapd::media::{MediaError, RgbFrame, decode_video, decode_video_from};
use faceswapd::paths::Dirs;
use faceswapd::sampling::{Pyramid, letterbox, roi_map};
use faceswapd::track::{Smoother, Smoothing};

/// The Python pipeline: decode (OpenCV), MediaPipe FaceMesh (BlazeFace short range + the same
/// FaceMesh model), and the same alignment (our 68-point mapping, Umeyama of points 17..67 onto
/// faceswap's mean face) per found face; one process, as a script runs it. Three MediaPipe
/// set-ups, each timed end to end (decode included) and on decoded frames (models only).
/// It serves runs one line at a time (`<set-up> e2e|models` → one JSON line), so the bench can
/// interleave them with its own.
const PYTHON_SIDE: &str = r#"
import sys, time, json, cv2, numpy as np, mediapipe as mp
video, cfg = sys.argv[1], json.loads(sys.argv[2])
IBUG = cfg["ibug68"][17:]
MEAN = np.array(cfg["mean_face_51"])

def umeyama(src, dst):
    # Similarity src -> dst (Umeyama 1991), as faceswap's lib/align does.
    ms, md = src.mean(0), dst.mean(0)
    sc, dc = src - ms, dst - md
    cov = dc.T @ sc / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0:
        s[1, 1] = -1
    r = u @ s @ vt
    scale = (d * np.diag(s)).sum() / sc.var(0).sum()
    return np.hstack([scale * r, (md - scale * r @ ms)[:, None]])

def align(face, w, h):
    lm = face.landmark
    pts = np.array([[lm[i].x * w, lm[i].y * h] for i in IBUG])
    return umeyama(pts, MEAN)

def run(static, faces_max, frames=None):
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=faces_max, refine_landmarks=False)
    cap = cv2.VideoCapture(video)
    ok, first = cap.read()
    mesh.process(cv2.cvtColor(first, cv2.COLOR_BGR2RGB))  # graph start-up, untimed
    cap.release()
    mesh.close()
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=faces_max, refine_landmarks=False)
    found, n = 0, 0
    t = time.perf_counter()
    if frames is None:
        cap = cv2.VideoCapture(video)
        while True:
            ok, f = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            for face in mesh.process(rgb).multi_face_landmarks or []:
                align(face, w, h)
                found += 1
            n += 1
    else:
        for rgb in frames:
            h, w = rgb.shape[:2]
            for face in mesh.process(rgb).multi_face_landmarks or []:
                align(face, w, h)
                found += 1
            n += 1
    dt = time.perf_counter() - t
    mesh.close()
    return n / dt, found

cap = cv2.VideoCapture(video)
decoded = []
while True:
    ok, f = cap.read()
    if not ok:
        break
    decoded.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
SETUPS = {"static": (True, 4), "video": (False, 4), "video1": (False, 1)}
print("ready", flush=True)
for line in sys.stdin:
    name, mode = line.split()
    static, faces_max = SETUPS[name]
    fps, faces = run(static, faces_max, decoded if mode == "models" else None)
    print(json.dumps({"fps": fps, "faces": faces}), flush=True)
"#;

/// Median milliseconds of `runs` calls of `f`.
fn median_ms(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[runs / 2])
}

/// What one call of each stage costs on a frame of the clip (one thread).
fn per_call_costs(models: &ModelFiles, frame: &RgbFrame) -> anyhow::Result<()> {
    let rt = &models.runtime;
    let mut mesh = FaceMesh::load(rt, &models.face_mesh)?;
    let mut short = BlazeFace::load(rt, &models.short_range, BlazeFaceKind::ShortRange)?;
    let mut full = BlazeFace::load(rt, &models.full_range, BlazeFaceKind::FullRange)?;
    let mut tensor = Vec::new();
    let roi = roi_map(
        [frame.width as f64 / 2.0, frame.height as f64 / 2.0],
        frame.height as f64 * 0.6,
        0.1,
        FACEMESH_SIZE,
    );
    let pyr = Pyramid::new(frame.clone());
    let warp = median_ms(200, || {
        pyr.warp_tensor(&roi, FACEMESH_SIZE, 0.0, 1.0, &mut tensor);
        Ok(())
    })?;
    let face_mesh = median_ms(200, || Ok(mesh.landmarks(&tensor).map(drop)?))?;
    let mut detector = |model: &mut BlazeFace, size: usize| {
        let lb = letterbox(frame.width, frame.height, size);
        pyr.warp_tensor(&lb, size, -1.0, 1.0, &mut tensor);
        median_ms(200, || Ok(model.detect(&tensor).map(drop)?))
    };
    let short_ms = detector(&mut short, BlazeFaceKind::ShortRange.input_size())?;
    let full_ms = detector(&mut full, BlazeFaceKind::FullRange.input_size())?;
    println!(
        "per call (median of 200, one thread): FaceMesh {face_mesh:.3} ms, BlazeFace short {short_ms:.3} ms, full {full_ms:.3} ms, 192² warp {warp:.3} ms"
    );
    Ok(())
}

/// One extractor per worker, loaded before a timed run.
fn loaded(
    models: &ModelFiles,
    workers: usize,
    settings: &ExtractSettings,
) -> anyhow::Result<Vec<Extractor>> {
    Ok((0..workers)
        .map(|_| Extractor::load(models, settings.clone()))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Faces found by all workers.
fn joined(handles: Vec<std::thread::JoinHandle<anyhow::Result<usize>>>) -> anyhow::Result<usize> {
    let mut faces = 0;
    for h in handles {
        faces += h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(faces)
}

/// The default video extraction (as `faceswapd extract` runs it): each worker decodes and
/// follows its own contiguous part of the clip, smoothing and aligning from smoothed points.
/// Returns seconds and faces.
fn tracked_run(
    models: &ModelFiles,
    settings: &ExtractSettings,
    video: &Path,
    n: usize,
    workers: usize,
) -> anyhow::Result<(f64, usize)> {
    // Models load before the clock starts, as Python's graph start-up is left out of its time.
    let extractors = loaded(models, workers, settings)?;
    let t = Instant::now();
    let chunk = n.div_ceil(workers);
    let mut handles = Vec::new();
    for (w, mut ex) in extractors.into_iter().enumerate() {
        let video = video.to_path_buf();
        let range = w * chunk..((w + 1) * chunk).min(n);
        handles.push(std::thread::spawn(move || -> anyhow::Result<usize> {
            let mut smoother = Smoother::new(Some(Smoothing::default()), 24.0);
            let (mut found, mut previous, mut since) = (0, Vec::new(), 0u32);
            let mut err = None;
            decode_video_from::<MediaError>(
                &video,
                range.start as u64,
                |i| range.contains(&(i as usize)),
                |i, _, f| {
                    let pyr = Pyramid::new(f);
                    match ex.process_tracked(
                        &pyr,
                        &previous,
                        &mut since,
                        &mut StageTimings::default(),
                    ) {
                        Ok(faces) => {
                            for (face, s) in faces.iter().zip(smoother.smooth(&faces)) {
                                let _ = ex.realign(pyr.base(), face, &s.landmarks);
                                found += 1;
                            }
                            previous = faces;
                            Ok(i + 1 < range.end as u64)
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
    let faces = joined(handles)?;
    Ok((t.elapsed().as_secs_f64(), faces))
}

/// End to end, detector on every frame: a decoding thread feeding one extractor per core.
fn detect_every_frame_run(
    models: &ModelFiles,
    video: &Path,
    workers: usize,
) -> anyhow::Result<(f64, usize)> {
    let extractors = loaded(models, workers, &ExtractSettings::default())?;
    let t = Instant::now();
    let (tx, rx) = sync_channel::<RgbFrame>(8);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut handles = Vec::new();
    for mut ex in extractors {
        let rx = std::sync::Arc::clone(&rx);
        handles.push(std::thread::spawn(move || -> anyhow::Result<usize> {
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
    decode_video::<MediaError>(video, |_| true, |_, _, f| Ok(tx.send(f).is_ok()))?;
    drop(tx);
    let faces = joined(handles)?;
    Ok((t.elapsed().as_secs_f64(), faces))
}

/// MediaPipe's set-ups on the Python side, as the script names them, with what each is.
const PYTHON_SETUPS: [(&str, &str); 3] = [
    (
        "static",
        "static_image_mode, up to 4 faces (detector every frame)",
    ),
    (
        "video",
        "video mode, up to 4 faces (tracks; detector while < 4 faces)",
    ),
    (
        "video1",
        "video mode, 1 face (tracks; detector only when lost)",
    ),
];

/// The Python pipeline as a child process serving timed runs.
struct PythonSide {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl PythonSide {
    /// Starts the script (it decodes the clip once for its models-only runs).
    fn start(python: &Path, video: &Path) -> Result<Self, String> {
        let cfg = format!(
            "{{\"ibug68\": {:?}, \"mean_face_51\": {:?}}}",
            IBUG68_FROM_FACEMESH, MEAN_FACE_51
        );
        let mut child = Command::new(python)
            .arg("-c")
            .arg(PYTHON_SIDE)
            .arg(video)
            .arg(cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("no pipes to the script".into());
        };
        let mut side = PythonSide {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout),
        };
        let first = side.line()?;
        if first.trim() != "ready" {
            return Err(format!("the script said {first:?}"));
        }
        Ok(side)
    }

    fn line(&mut self) -> Result<String, String> {
        use std::io::BufRead;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err("the script ended (is mediapipe importable?)".into()),
            Ok(_) => Ok(line),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One timed run of a set-up, end to end or on decoded frames: (frames/s, faces).
    fn run(&mut self, setup: &str, models_only: bool) -> Result<(f64, f64), String> {
        use std::io::Write;
        let mode = if models_only { "models" } else { "e2e" };
        writeln!(self.stdin, "{setup} {mode}").map_err(|e| e.to_string())?;
        let line = self.line()?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        match (v["fps"].as_f64(), v["faces"].as_f64()) {
            (Some(fps), Some(faces)) => Ok((fps, faces)),
            _ => Err(format!("no fps/faces in {line}")),
        }
    }
}

impl Drop for PythonSide {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Median of a non-empty list.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let dirs = Dirs::resolve()?;
    let models = faceswapd::extract::default_models(&dirs)?;
    let video = faceswap_tests::test_asset("WolfgangLanger_Pexels.mp4")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: usize = faceswap_tests::env_or("FSPP_BENCH_WORKERS", cores).max(1);
    let repeats: usize = faceswap_tests::env_or("FSPP_BENCH_REPEATS", 3).max(1);

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
    println!(
        "extraction on {} ({n} frames, {}x{}), best of {repeats} runs each",
        video.display(),
        frames[0].width,
        frames[0].height
    );
    println!(
        "decode only:                                {:>7.1} frames/s",
        n as f64 / decode_s
    );
    per_call_costs(&models, &frames[n / 2])?;

    // One worker, frames already in memory (per-stage timings).
    let mut ex = Extractor::load(&models, ExtractSettings::default())?;
    let mut timings = StageTimings::default();
    let t = Instant::now();
    let mut faces = 0;
    for f in &frames {
        faces += ex.process(&Pyramid::new(f.clone()), &mut timings)?.len();
    }
    let single_s = t.elapsed().as_secs_f64();
    drop(frames);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "1 worker, detector every frame (decoded):   {:>7.1} frames/s  [detect {:.1} ms, landmarks {:.1} ms, align {:.2} ms per frame; {faces} faces]",
        n as f64 / single_s,
        ms(timings.detect),
        ms(timings.landmarks),
        ms(timings.align)
    );

    let best = |runs: Vec<(f64, usize)>| {
        runs.into_iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::INFINITY, 0))
    };
    let (detect_s, detect_faces) = best(
        (0..repeats)
            .map(|_| detect_every_frame_run(&models, &video, workers))
            .collect::<anyhow::Result<_>>()?,
    );
    println!(
        "decode + {workers} workers, detector every frame: {:>7.1} frames/s  [{detect_faces} faces]",
        n as f64 / detect_s
    );
    // Ours and each Python set-up run back to back in rounds, so the machine's drift (shared,
    // noisy) hits both sides of a round's ratios alike. Ours runs twice a round: with default
    // settings (re-detects every 10 frames for faces that enter) and with `--max-faces 1`, the
    // like of MediaPipe's 1-face set-up (the detector runs only when the face is lost).
    let python: PathBuf = match std::env::var("FSPP_BENCH_PYTHON") {
        Ok(p) => PathBuf::from(p),
        Err(_) => faceswap_tests::bench_venv("mediapipe-bench", "mediapipe==0.10.14")?,
    };
    let mut side = PythonSide::start(&python, &video)
        .map_err(|e| println!("python side skipped ({}: {e})", python.display()))
        .ok();
    let default = ExtractSettings::default();
    let one_face = ExtractSettings {
        max_faces: 1,
        ..ExtractSettings::default()
    };
    let (mut tracked, mut tracked_one) = (Vec::new(), Vec::new());
    let mut py_e2e: Vec<Vec<(f64, f64)>> = vec![Vec::new(); PYTHON_SETUPS.len()];
    // Per round: ours / Python for each set-up (like for like), and default / fastest Python.
    let mut like_ratios: Vec<Vec<f64>> = vec![Vec::new(); PYTHON_SETUPS.len()];
    let mut fastest_ratios = Vec::new();
    for _ in 0..repeats {
        let (secs, faces) = tracked_run(&models, &default, &video, n, workers)?;
        tracked.push((secs, faces));
        let (secs_one, faces_one) = tracked_run(&models, &one_face, &video, n, workers)?;
        tracked_one.push((secs_one, faces_one));
        let Some(py) = side.as_mut() else { continue };
        let round: Result<Vec<(f64, f64)>, String> = PYTHON_SETUPS
            .iter()
            .map(|(name, _)| py.run(name, false))
            .collect();
        match round {
            Ok(round) => {
                let fastest = round.iter().map(|r| r.0).fold(0.0, f64::max);
                fastest_ratios.push(n as f64 / secs / fastest);
                for (k, r) in round.into_iter().enumerate() {
                    let ours_s = if PYTHON_SETUPS[k].0 == "video1" {
                        secs_one
                    } else {
                        secs
                    };
                    like_ratios[k].push(n as f64 / ours_s / r.0);
                    py_e2e[k].push(r);
                }
            }
            Err(e) => {
                println!("python side skipped ({}: {e})", python.display());
                side = None;
            }
        }
    }
    let (tracked_s, tracked_faces) = best(tracked);
    let (one_s, one_faces) = best(tracked_one);
    let ours = n as f64 / tracked_s;
    println!(
        "decode + {workers} workers, tracking (default):  {ours:>7.1} frames/s  [{tracked_faces} faces]  (goal ≥ 60)"
    );
    println!(
        "decode + {workers} workers, tracking, max 1 face: {:>7.1} frames/s  [{one_faces} faces]",
        n as f64 / one_s
    );
    println!(
        "per-frame cost, tracking + smoothing / detector every frame: {:.2}  (goal ≤ 0.6)",
        tracked_s / detect_s
    );
    let Some(mut py) = side else { return Ok(()) };
    println!(
        "python mediapipe FaceMesh, one process: decode + detect + landmarks + align (models only, decoded frames)"
    );
    let spread = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        format!("median {:.2}x, range {lo:.2}–{hi:.2}x", median(v.to_vec()))
    };
    for (((name, what), runs), ratios) in PYTHON_SETUPS.iter().zip(&py_e2e).zip(&like_ratios) {
        let (fps, faces) = runs
            .iter()
            .copied()
            .fold((0.0, 0.0), |a, r| if r.0 > a.0 { r } else { a });
        let mut models_fps: f64 = 0.0;
        for _ in 0..repeats {
            match py.run(name, true) {
                Ok((f, _)) => models_fps = models_fps.max(f),
                Err(e) => anyhow::bail!("python side failed: {e}"),
            }
        }
        let ours_as = if *name == "video1" {
            "max 1 face"
        } else {
            "default"
        };
        println!("  {what:<62} {fps:>7.1} frames/s ({models_fps:.1})  [{faces} faces]");
        println!(
            "    ours ({ours_as}) / python, per round: {}  (goal ≥ 2x)",
            spread(ratios)
        );
    }
    println!(
        "ours (default) / the fastest python set-up, per round: {}",
        spread(&fastest_ratios)
    );
    Ok(())
}
