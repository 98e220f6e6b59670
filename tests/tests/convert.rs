//! Convert end to end: the Pexels clip extracted with the real extractor, a tiny SAEHD model
//! trained on the CPU, then `faceswapd convert` through a real daemon, checked with ffprobe;
//! bad inputs; the identity round trip on a real face; image-sequence outputs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use faceswap_models::ComputeDevice;
use faceswap_protocol::{ConvertSettings, TrainSettings};
use faceswap_tests::{
    DaemonUnderTest, copy_fixtures, extract_faceset, share_extractor_models, test_asset,
};
use faceswapd::extract::pipeline::{Extractor, StageTimings};
use faceswapd::faceset::ALIGNMENTS_FILE;
use faceswapd::faceset::face::ExtractSettings;
use faceswapd::faceset::store::Alignments;
use faceswapd::geometry::Centering;
use faceswapd::merge::convert::{ConvertError, ConvertRequest, ModelPredictor, run_convert};
use faceswapd::merge::{
    ColorTransfer, FacePredictor, MaskMode, MergeSettings, Motion, Plane, Prediction, Rgb,
    TargetFace, face_matrix, merge_frame,
};
use faceswapd::paths::Dirs;
use faceswapd::sampling::{Pyramid, load_image};
use faceswapd::train::{TrainRequest, run_training};

struct Fixture {
    /// The Pexels clip.
    video: PathBuf,
    /// Its faceset (every frame extracted: the alignments convert reads).
    faceset: PathBuf,
    /// A tiny trained model.
    model: PathBuf,
}

/// Extracts the whole Pexels clip (DFL full-face crops) and trains a tiny model for a few steps
/// (side A: the fixture photos), once per test binary.
fn fixture() -> &'static Fixture {
    static FIX: OnceLock<Fixture> = OnceLock::new();
    FIX.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-fixture");
        let _ = std::fs::remove_dir_all(&root);
        let photos = root.join("photos");
        copy_fixtures(
            &photos,
            &["grace_hopper.jpg", "eileen_collins_astronaut.png"],
        )
        .unwrap();
        let video = test_asset("WolfgangLanger_Pexels.mp4").unwrap();
        extract_faceset(&photos, &root.join("a"), 64).unwrap();
        extract_faceset(&video, &root.join("b"), 64).unwrap();
        let model = root.join("model");
        let req = TrainRequest {
            faceset_a: root.join("a"),
            faceset_b: root.join("b"),
            model_dir: model.clone(),
            settings: TrainSettings {
                archi: "df".into(),
                resolution: 32,
                ae_dims: 32,
                e_dims: 8,
                d_dims: 8,
                d_mask_dims: 4,
                batch: 4,
                steps: 4,
                save_every: 4,
                preview_every: 100,
                ..TrainSettings::default()
            },
            device: ComputeDevice::CPU,
            replicas: Vec::new(),
        };
        run_training(&req, |_| true).unwrap();
        Fixture {
            video,
            faceset: root.join("b"),
            model,
        }
    })
}

/// One ffprobe query, CSV without headers.
fn ffprobe(file: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe is installed (installers/deps.sh installs ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn video_frames_and_rate(file: &Path) -> (u64, String) {
    let s = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=r_frame_rate,nb_read_frames",
        ],
    );
    let (rate, frames) = s.split_once(',').unwrap();
    (frames.trim().parse().unwrap(), rate.to_string())
}

fn duration(file: &Path) -> f64 {
    ffprobe(file, &["-show_entries", "format=duration"])
        .parse()
        .unwrap()
}

#[test]
fn faceswapd_convert_writes_the_whole_clip_with_audio_and_provenance() {
    let fx = fixture();
    let root = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let out = root.path().join("swapped.mp4");
    let (video, faceset, model) = (
        fx.video.display().to_string(),
        fx.faceset.display().to_string(),
        fx.model.display().to_string(),
    );
    let res = d
        .cli(&[
            "convert",
            &video,
            "--alignments",
            &faceset,
            "--model",
            &model,
            "--out",
            &out.display().to_string(),
            "--color",
            "mkl",
            "--erode",
            "8",
            "--blur",
            "16",
            "--label",
            "SYNTHETIC",
            "--project",
            "convert-test",
        ])
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    println!("{text}");
    assert!(res.status.success(), "convert failed: {text}");
    let (frames_in, rate_in) = video_frames_and_rate(&fx.video);
    let (frames_out, rate_out) = video_frames_and_rate(&out);
    let (dur_in, dur_out) = (duration(&fx.video), duration(&out));
    println!(
        "source: {frames_in} frames at {rate_in}, {dur_in:.3} s; output: {frames_out} frames at {rate_out}, {dur_out:.3} s"
    );
    assert_eq!(frames_out, frames_in);
    assert_eq!(rate_out, rate_in);
    assert!(
        (dur_out - dur_in).abs() < 0.05,
        "duration {dur_out} vs {dur_in}"
    );
    let audio = ffprobe(
        &out,
        &["-select_streams", "a", "-show_entries", "stream=codec_type"],
    );
    assert_eq!(audio, "audio", "the source's audio is muxed back");
    let tag = ffprobe(&out, &["-show_entries", "format_tags=comment"]);
    println!("provenance tag: {tag}");
    assert!(
        tag.contains("Faceswap++") && tag.contains("convert-test"),
        "{tag}"
    );
    // Nothing partial is left beside it.
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");

    // README's other merge modes, through the CLI and its job: three frames each, as PNGs.
    let mut outputs = Vec::new();
    for mode in [
        "overlay",
        "hist-match",
        "seamless-hist-match",
        "raw-rgb",
        "raw-predict",
    ] {
        let dir = root.path().join(format!("frames-{mode}"));
        std::fs::create_dir_all(&dir).unwrap();
        let res = d
            .cli(&[
                "convert",
                &video,
                "--alignments",
                &faceset,
                "--model",
                &model,
                "--out",
                &format!("{}/", dir.display()),
                "--mode",
                mode,
                "--frames",
                "0-2",
            ])
            .unwrap();
        let text = String::from_utf8_lossy(&res.stderr).into_owned();
        assert!(res.status.success(), "--mode {mode}: {text}");
        let mut frames: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        frames.sort();
        assert_eq!(frames.len(), 3, "--mode {mode}: {frames:?}");
        let first = image::open(&frames[0]).unwrap().to_rgb8();
        outputs.push((mode, first));
    }
    let overlay = &outputs[0].1;
    for (mode, img) in &outputs[1..] {
        if *mode == "raw-predict" {
            // DFL's raw-predict writes the predicted face itself, at the model's size.
            let (w, h) = img.dimensions();
            assert!(w == h && w < overlay.width(), "raw-predict gave {w}x{h}");
            assert!(
                img.pixels().any(|p| p.0 != [0, 0, 0]),
                "raw-predict is black"
            );
            continue;
        }
        assert_eq!(img.dimensions(), overlay.dimensions(), "--mode {mode}");
        let differing = img
            .pixels()
            .zip(overlay.pixels())
            .filter(|(a, b)| a != b)
            .count();
        println!("--mode {mode}: {differing} pixels differ from overlay in frame 0");
        assert!(differing > 0, "--mode {mode} gave overlay's frame");
    }
}

fn request(fx: &Fixture, output: PathBuf, settings: ConvertSettings) -> ConvertRequest {
    ConvertRequest {
        input: fx.video.clone(),
        alignments: fx.faceset.clone(),
        model_dir: fx.model.clone(),
        output,
        settings,
        device: ComputeDevice::CPU,
    }
}

fn first_frames(n: u64) -> ConvertSettings {
    ConvertSettings {
        frames: vec![(0, n - 1)],
        ..ConvertSettings::default()
    }
}

#[test]
fn bad_inputs_give_clear_errors_and_no_partial_output() {
    let fx = fixture();
    let root = tempfile::tempdir().unwrap();

    // A model folder whose model.toml says another resolution than its checkpoint holds.
    let wrong = root.path().join("wrong-model");
    std::fs::create_dir_all(&wrong).unwrap();
    for e in std::fs::read_dir(&fx.model).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, wrong.join(p.file_name().unwrap())).unwrap();
        }
    }
    let toml = std::fs::read_to_string(wrong.join("model.toml")).unwrap();
    std::fs::write(
        wrong.join("model.toml"),
        toml.replace("resolution = 32", "resolution = 64"),
    )
    .unwrap();
    let e = ModelPredictor::open(&wrong, ComputeDevice::CPU)
        .err()
        .expect("a model for another resolution is refused")
        .to_string();
    println!("wrong model: {e}");
    assert!(e.contains("do not fit") && e.contains("64 px"), "{e}");

    // Alignments missing a frame.
    let mut store = Alignments::load(&fx.faceset.join(ALIGNMENTS_FILE)).unwrap();
    store.frames.remove(&5);
    let holes = root.path().join("holes");
    std::fs::create_dir_all(&holes).unwrap();
    store.save(&holes.join(ALIGNMENTS_FILE)).unwrap();
    let mut model = ModelPredictor::open(&fx.model, ComputeDevice::CPU).unwrap();
    let out = root.path().join("holes.mp4");
    let mut req = request(fx, out.clone(), first_frames(10));
    req.alignments = holes.clone();
    let e = run_convert(&req, &mut model, |_, _| true).unwrap_err();
    println!("missing alignments: {e}");
    assert!(
        matches!(e, ConvertError::MissingAlignments { index: 5, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("--allow-missing-alignments"));
    assert!(!out.exists());
    // Allowed: the frame passes through and the video is complete.
    req.settings.allow_missing_alignments = true;
    let s = run_convert(&req, &mut model, |_, _| true).unwrap();
    assert_eq!(s.frames_written, 10);
    assert!(out.exists());

    // An output folder that does not exist, and one that cannot be written.
    let req = request(fx, root.path().join("no/such/dir/out.mp4"), first_frames(3));
    let e = run_convert(&req, &mut model, |_, _| true)
        .unwrap_err()
        .to_string();
    println!("missing folder: {e}");
    assert!(e.contains("does not exist"), "{e}");
    // Under a regular file: certain to fail, as root too.
    let plain = root.path().join("plain-file");
    std::fs::write(&plain, b"not a folder").unwrap();
    let req = request(fx, plain.join("out.mp4"), first_frames(3));
    let e = run_convert(&req, &mut model, |_, _| true)
        .unwrap_err()
        .to_string();
    println!("folder is a file: {e}");
    assert!(
        e.contains("cannot write") && e.contains("is a file, not a folder"),
        "{e}"
    );
    // A folder no one may create files in (procfs refuses root too): FFmpeg's open fails.
    let req = request(fx, PathBuf::from("/proc/self/out.mp4"), first_frames(3));
    let e = run_convert(&req, &mut model, |_, _| true)
        .unwrap_err()
        .to_string();
    println!("unwritable folder: {e}");
    assert!(e.contains("cannot write") && e.contains("writable"), "{e}");

    // Stopping midway removes the partial file; nothing appears under the final name.
    let out = root.path().join("stopped.mp4");
    let req = request(fx, out.clone(), ConvertSettings::default());
    let e = run_convert(&req, &mut model, |done, _| done < 5).unwrap_err();
    assert!(matches!(e, ConvertError::Stopped(5)), "{e}");
    assert!(!out.exists());
    let left: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // An unknown option never reaches the job: reading it (a job record, a wire message) fails
    // naming what is accepted.
    let text = toml::to_string(&ConvertSettings::default())
        .unwrap()
        .replace("color = \"rct\"", "color = \"sepia\"");
    let e = toml::from_str::<ConvertSettings>(&text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sepia") && e.contains("mkl"), "{e}");
    let xseg = ConvertSettings {
        mask_mode: MaskMode::XsegDst,
        ..ConvertSettings::default()
    };
    let e = run_convert(
        &request(fx, root.path().join("x.mp4"), xseg),
        &mut model,
        |_, _| true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("XSeg"), "{e}");
}

#[test]
fn image_sequences_carry_the_provenance_tag() {
    let fx = fixture();
    let root = tempfile::tempdir().unwrap();
    let mut model = ModelPredictor::open(&fx.model, ComputeDevice::CPU).unwrap();
    for format in ["png", "tiff"] {
        let out = root.path().join(format!("frames-{format}"));
        let settings = ConvertSettings {
            frames: vec![(0, 2), (100, 101)],
            image_format: format.parse().unwrap(),
            project: "seq".into(),
            ..ConvertSettings::default()
        };
        let s = run_convert(&request(fx, out.clone(), settings), &mut model, |_, _| true).unwrap();
        assert_eq!(s.frames_written, 5);
        let mut files: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        println!("{format}: {files:?}");
        assert_eq!(files.len(), 5);
        assert!(files[0].starts_with("frame_000000."));
        let bytes = std::fs::read(out.join(&files[0])).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(b"Face-swapped by Faceswap++") && has(b"seq"),
            "{format}: no provenance tag"
        );
        let img = image::load_from_memory(&bytes);
        if format == "png" {
            let img = img.unwrap();
            assert_eq!((img.width(), img.height()), (640, 360));
        }
    }
}

/// Hands the destination face back as it came, with full masks.
struct Identity(usize);

impl FacePredictor for Identity {
    fn resolution(&self) -> usize {
        self.0
    }
    fn centering(&self) -> Centering {
        Centering::DflWholeFace
    }
    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
        Ok(faces
            .iter()
            .map(|f| Prediction {
                face: f.clone(),
                face_mask: Plane::filled(self.0, self.0, 1.0),
                dst_mask: Plane::filled(self.0, self.0, 1.0),
            })
            .collect())
    }
}

#[test]
fn identity_round_trip_on_real_faces() {
    let dirs = Dirs::resolve().unwrap();
    let models = faceswapd::extract::default_models(&dirs).unwrap();
    let mut ex = Extractor::load(&models, ExtractSettings::default()).unwrap();
    for name in ["grace_hopper.jpg", "luis_pedro_coelho_mahotas.jpg"] {
        let frame = load_image(&test_asset(name).unwrap()).unwrap();
        let faces = ex
            .process(&Pyramid::new(frame.clone()), &mut StageTimings::default())
            .unwrap();
        let lm = faces[0].landmarks68();
        let settings = MergeSettings {
            mask_mode: MaskMode::Full,
            color: ColorTransfer::None,
            ..MergeSettings::default()
        };
        let target = TargetFace {
            landmarks: lm,
            motion: Motion::default(),
            mask: None,
        };
        // A crop that oversamples the face (about 2× its frame size): what is measured is the
        // geometry — the inverse warp landing on the same pixels — not bilinear's softening.
        let mut model = Identity(1024);
        let out = merge_frame(&frame, &[target], &mut model, &settings).unwrap();
        let m = face_matrix(&lm, 1024, Centering::DflWholeFace);
        let (mut se, mut n, mut outside_changed, mut outside) = (0f64, 0u64, 0u64, 0u64);
        let w = frame.width as usize;
        for y in 0..frame.height as usize {
            for x in 0..w {
                let q = m.apply([x as f64 + 0.5, y as f64 + 0.5]);
                let o = (y * w + x) * 3;
                let inside = q.iter().all(|v| (4.0..1020.0).contains(v));
                let beyond = q.iter().any(|v| !(-4.0..1028.0).contains(v));
                for c in 0..3 {
                    let d = out.data[o + c] as f64 - frame.data[o + c] as f64;
                    if inside {
                        se += d * d;
                        n += 1;
                    } else if beyond {
                        outside += 1;
                        outside_changed += (d != 0.0) as u64;
                    }
                }
            }
        }
        let psnr = 10.0 * (255f64.powi(2) / (se / n as f64).max(1e-12)).log10();
        println!(
            "{name}: PSNR {psnr:.1} dB inside the face ({n} samples); {outside_changed} of {outside} outside samples changed"
        );
        assert!(psnr >= 40.0, "{name}: PSNR {psnr}");
        assert_eq!(outside_changed, 0, "{name}");
    }
}

/// The swap effect's render path: a frame in a shared-memory slot through a real daemon with
/// the test-trained model — pixels change inside the face, every byte outside stays; 8-bit with
/// an odd width, float with padded rows.
#[test]
fn the_swap_effect_renders_frames_through_the_daemon() {
    use faceswap_ofx::{DaemonLink, HostImage, RenderOutcome};
    use faceswap_protocol::{FrameOp, PixelFormat, SwapSettings, SwapTarget};

    let fx = fixture();
    let root = tempfile::tempdir().unwrap();
    share_extractor_models(&root.path().join("daemon")).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let mut frame = None;
    faceswapd::media::decode_video::<faceswapd::media::MediaError>(
        &fx.video,
        |i| i == 300,
        |_, _, f| {
            frame = Some(f);
            Ok(false)
        },
    )
    .unwrap();
    let frame = frame.unwrap();
    let store = Alignments::load(&fx.faceset.join(ALIGNMENTS_FILE)).unwrap();
    let lm = store.frames[&300].faces[0].face.landmarks68();
    let crop = face_matrix(&lm, 32, Centering::DflFull);
    let settings = SwapSettings {
        model_dir: fx.model.display().to_string(),
        project: None,
        target: SwapTarget::Largest,
        bottom_up: false,
        show: faceswap_protocol::SwapView::Result,
        merge: ConvertSettings {
            mask_mode: MaskMode::Dst,
            ..ConvertSettings::default()
        },
    };
    // First render loads the extractor and the model: a generous deadline.
    let mut link = DaemonLink::new(d.socket.clone(), std::time::Duration::from_secs(60));
    for (format, width) in [(PixelFormat::Rgba8, 639u32), (PixelFormat::RgbaF32, 640)] {
        let bpp = format.bytes_per_pixel();
        let stride = width as usize * bpp + 3 * bpp; // padded rows
        let h = frame.height as usize;
        let mut src = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..width as usize {
                let p = &frame.data[(y * frame.width as usize + x) * 3..][..3];
                let o = y * stride + x * bpp;
                for c in 0..4 {
                    let v = if c < 3 { p[c] } else { 200 };
                    match format {
                        PixelFormat::Rgba8 => src[o + c] = v,
                        _ => src[o + 4 * c..o + 4 * c + 4]
                            .copy_from_slice(&(v as f32 / 255.0).to_le_bytes()),
                    }
                }
            }
            // Padding bytes hold garbage a host might leave there.
            for b in &mut src[y * stride + width as usize * bpp..(y + 1) * stride] {
                *b = 0xAB;
            }
        }
        let image = HostImage {
            width,
            height: h as u32,
            stride,
            format,
            data: &src,
        };
        let mut dst = vec![0u8; stride * h];
        let outcome = link.render(
            &image,
            &mut dst,
            stride,
            FrameOp::Swap(Box::new(settings.clone())),
        );
        assert_eq!(outcome, RenderOutcome::Processed, "{format:?}");
        let (mut inside_changed, mut outside_changed) = (0usize, 0usize);
        for y in 0..h {
            for x in 0..width as usize {
                let o = y * stride + x * bpp;
                let differs = src[o..o + bpp] != dst[o..o + bpp];
                let q = crop.apply([x as f64 + 0.5, y as f64 + 0.5]);
                if q.iter().all(|v| (0.0..32.0).contains(v)) {
                    inside_changed += differs as usize;
                } else if q.iter().any(|v| !(-1.0..33.0).contains(v)) {
                    outside_changed += differs as usize;
                }
            }
        }
        println!(
            "{format:?} {width} px wide: {inside_changed} pixels changed inside the face, {outside_changed} outside"
        );
        assert!(inside_changed > 500, "{format:?}: the face was not swapped");
        assert_eq!(
            outside_changed, 0,
            "{format:?}: pixels outside the face changed"
        );
    }
    // No model there: a clear refusal, the source passed through.
    let bad = SwapSettings {
        model_dir: root.path().join("nothing").display().to_string(),
        project: None,
        ..settings
    };
    let src = vec![7u8; 64 * 64 * 4];
    let image = HostImage {
        width: 64,
        height: 64,
        stride: 256,
        format: PixelFormat::Rgba8,
        data: &src,
    };
    let mut dst = vec![0u8; src.len()];
    match link.render(&image, &mut dst, 256, FrameOp::Swap(Box::new(bad))) {
        RenderOutcome::PassedThrough(why) => {
            println!("no model: {why}");
            assert!(why.contains("model.toml") || why.contains("model"), "{why}");
        }
        other => panic!("expected a pass-through, got {other:?}"),
    }
    assert_eq!(dst, src);
}

/// Convert with an XSeg mask mode: an XSeg model trained on labelled faces of the destination
/// faceset, run by the SAEHD predictor on the destination and predicted faces.
#[test]
fn convert_with_an_xseg_model() {
    use faceswapd::masks::xseg::{LabelPolygon, XsegTrainRequest, train_xseg};
    use faceswapd::warp::convex_hull;
    let fx = fixture();
    let root = tempfile::tempdir().unwrap();
    // Label a copy of the destination faceset's first faces with their hulls.
    let faceset = root.path().join("labelled");
    std::fs::create_dir_all(faceset.join("faces")).unwrap();
    let mut store = Alignments::load(&fx.faceset.join(ALIGNMENTS_FILE)).unwrap();
    for (i, e) in store.frames.iter_mut() {
        for f in e.faces.iter_mut() {
            if *i < 40 && i % 4 == 0 {
                f.labels = vec![LabelPolygon {
                    include: true,
                    points: convex_hull(&f.face.landmarks68()),
                }];
            }
            if let Some(file) = &f.file {
                let to = faceset.join(file);
                let _ = std::fs::copy(fx.faceset.join(file), to);
            }
        }
    }
    store.save(&faceset.join(ALIGNMENTS_FILE)).unwrap();
    let xseg = root.path().join("xseg");
    train_xseg(
        &XsegTrainRequest {
            facesets: vec![faceset],
            model_dir: xseg.clone(),
            resolution: 32,
            base: 8,
            steps: 30,
            batch: 4,
            lr: 2e-3,
            seed: 1,
            save_every: 30,
            device: ComputeDevice::CPU,
        },
        |_, _| true,
    )
    .unwrap();
    let model = ModelPredictor::open(&fx.model, ComputeDevice::CPU).unwrap();
    let mut model = model.with_xseg(&xseg).unwrap();
    let out = root.path().join("xseg.mp4");
    let settings = ConvertSettings {
        frames: vec![(0, 2)],
        mask_mode: MaskMode::XsegPrdTimesDst,
        ..ConvertSettings::default()
    };
    let s = run_convert(&request(fx, out.clone(), settings), &mut model, |_, _| true).unwrap();
    println!("{}", s.report().join("\n"));
    assert_eq!((s.frames_written, s.faces_swapped), (3, 3));
    assert!(out.is_file());
}
