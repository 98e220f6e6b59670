//! Extraction on the real fixtures with the real converted MediaPipe models and ONNX Runtime.

use std::path::{Path, PathBuf};

use faceswapd::extract::pipeline::{Extractor, ModelFiles, StageTimings};
use faceswapd::extract::{ExtractError, ExtractRequest, run_extraction};
use faceswapd::faceset::face::{ExtractSettings, Face};
use faceswapd::faceset::store::Alignments;
use faceswapd::faceset::{ALIGNMENTS_FILE, read_face_meta};
use faceswapd::geometry::{Affine, Centering, MEAN_FACE_51, crop_matrix};
use faceswapd::media::RgbFrame;
use faceswapd::paths::Dirs;
use faceswapd::sampling::{Pyramid, load_image};

fn models() -> ModelFiles {
    let dirs = Dirs::resolve().unwrap();
    faceswapd::extract::default_models(&dirs)
        .expect("converted models are cached (run `faceswapd assets fetch` or installers/test.sh)")
}

fn extractor(settings: ExtractSettings) -> Extractor {
    Extractor::load(&models(), settings).unwrap()
}

fn asset(name: &str) -> PathBuf {
    faceswap_tests::test_asset(name).unwrap()
}

fn faces_in(ex: &mut Extractor, img: RgbFrame) -> Vec<Face> {
    let pyr = Pyramid::new(img);
    ex.process(&pyr, &mut StageTimings::default()).unwrap()
}

fn accepted(faces: &[Face]) -> usize {
    faces.iter().filter(|f| f.rejected.is_none()).count()
}

fn eye_centres(lm: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let s = r.fold([0.0, 0.0], |a, i| [a[0] + lm[i][0], a[1] + lm[i][1]]);
        [s[0] / n, s[1] / n]
    };
    (mean(36..42), mean(42..48))
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

#[test]
fn every_visible_face_in_the_fixtures_is_found() {
    let mut ex = extractor(ExtractSettings::default());
    for (name, expected) in [
        ("grace_hopper.jpg", 1),
        ("eileen_collins_astronaut.png", 1),
        ("luis_pedro_coelho_mahotas.jpg", 1),
        ("vladmandic_faceapi_sample3_multiface.jpg", 3),
    ] {
        let faces = faces_in(&mut ex, load_image(&asset(name)).unwrap());
        println!(
            "{name}: {} faces, {} accepted",
            faces.len(),
            accepted(&faces)
        );
        assert_eq!(faces.len(), expected, "{name}");
        assert_eq!(accepted(&faces), expected, "{name}: {faces:?}");
    }
    // The Pexels clip from frame 240 on (the hand no longer covers the face): one face each.
    let video = asset("WolfgangLanger_Pexels.mp4");
    let mut checked = 0;
    faceswapd::media::decode_video::<faceswapd::media::MediaError>(
        &video,
        |i| i >= 240 && i % 12 == 0,
        |i, _, frame| {
            let faces = faces_in(&mut ex, frame);
            assert_eq!(accepted(&faces), 1, "frame {i}: {faces:?}");
            checked += 1;
            Ok(true)
        },
    )
    .unwrap();
    assert!(checked >= 19, "checked {checked} frames");
}

/// Warps `img` by the similarity `t` (original → canvas) onto a `size` square canvas.
fn transformed(pyr: &Pyramid, t: &Affine, size: usize) -> RgbFrame {
    pyr.warp_rgb(&t.inverse().unwrap(), size)
}

/// Median over 20 random similarity transforms of the mean landmark error (mapped back to the
/// original), in units of the inter-ocular distance.
fn consistency_error(settings: ExtractSettings) -> f64 {
    let mut ex = extractor(settings);
    let img = load_image(&asset("grace_hopper.jpg")).unwrap();
    let pyr = Pyramid::new(img.clone());
    let base = faces_in(&mut ex, img);
    assert_eq!(base.len(), 1);
    let reference = &base[0].landmarks;
    let (l, r) = eye_centres(reference);
    let iod = dist(l, r);
    let face_centre = reference[30];
    // A small deterministic generator keeps the test repeatable.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut errors = Vec::new();
    for _ in 0..20 {
        let angle = (next() * 60.0 - 30.0).to_radians();
        let scale = 0.5 * 4f64.powf(next()); // 0.5 .. 2, log-uniform
        let canvas = 900.0;
        let shift = [(next() - 0.5) * 200.0, (next() - 0.5) * 200.0];
        // Rotate and scale about the face, then place it near the canvas centre plus a shift.
        let rs = Affine::similarity(scale, angle, 0.0, 0.0);
        let c = rs.apply(face_centre);
        let t = Affine::similarity(
            scale,
            angle,
            canvas / 2.0 + shift[0] - c[0],
            canvas / 2.0 + shift[1] - c[1],
        );
        let faces = faces_in(&mut ex, transformed(&pyr, &t, canvas as usize));
        assert_eq!(faces.len(), 1, "transform {t:?}");
        let back = t.inverse().unwrap();
        let err: f64 = faces[0]
            .landmarks
            .iter()
            .zip(reference)
            .map(|(p, q)| dist(back.apply(*p), *q))
            .sum::<f64>()
            / 68.0
            / iod;
        errors.push(err);
    }
    errors.sort_by(f64::total_cmp);
    errors[errors.len() / 2]
}

#[test]
fn landmarks_are_consistent_under_similarity_transforms_and_the_second_pass_helps() {
    let first_only = consistency_error(ExtractSettings {
        second_pass: false,
        ..ExtractSettings::default()
    });
    let second = consistency_error(ExtractSettings::default());
    println!(
        "median landmark error / inter-ocular distance: first pass only {:.2}%, with second pass {:.2}%",
        first_only * 100.0,
        second * 100.0
    );
    assert!(
        second < 0.02,
        "second pass median error {:.2}% ≥ 2%",
        second * 100.0
    );
    assert!(second < first_only, "the second pass must lower the error");
}

#[test]
fn aligned_crops_put_the_eyes_where_the_mean_face_has_them() {
    let mut ex = extractor(ExtractSettings::default());
    let size = 256u32;
    // Canonical eye centres in a legacy crop: the mean face's eye points through the crop map.
    let canon = crop_matrix(&Affine::IDENTITY, size, Centering::Legacy);
    let mean_eye = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let s = r.fold([0.0, 0.0], |a, i| {
            [
                a[0] + MEAN_FACE_51[i - 17][0],
                a[1] + MEAN_FACE_51[i - 17][1],
            ]
        });
        canon.apply([s[0] / n, s[1] / n])
    };
    let (cl, cr) = (mean_eye(36..42), mean_eye(42..48));
    let mut worst_canonical: f64 = 0.0;
    for name in [
        "grace_hopper.jpg",
        "eileen_collins_astronaut.png",
        "luis_pedro_coelho_mahotas.jpg",
        "vladmandic_faceapi_sample3_multiface.jpg",
    ] {
        let img = load_image(&asset(name)).unwrap();
        let pyr = Pyramid::new(img);
        for face in ex.process(&pyr, &mut StageTimings::default()).unwrap() {
            let crop = crop_matrix(&face.legacy, size, Centering::Legacy);
            let aligned = pyr.warp_rgb(&crop.inverse().unwrap(), size as usize);
            // Find the landmarks again on the crop itself: an independent measurement.
            let again = faces_in(&mut ex, aligned);
            assert_eq!(again.len(), 1, "{name}: one face in its aligned crop");
            let (l, r) = eye_centres(&again[0].landmarks);
            // Where this face's own eyes must land if the crop is right.
            let (fl, fr) = eye_centres(&face.landmarks);
            let (pl, pr) = (crop.apply(fl), crop.apply(fr));
            let geometric = dist(l, pl).max(dist(r, pr)) / size as f64;
            let canonical = dist(l, cl).max(dist(r, cr)) / size as f64;
            worst_canonical = worst_canonical.max(canonical);
            println!(
                "{name}: eye centres {:.2}% of the crop from where the alignment puts them, {:.2}% from the mean face's",
                geometric * 100.0,
                canonical * 100.0
            );
            assert!(
                geometric < 0.02,
                "{name}: the crop misplaces the eyes by {geometric:.3}"
            );
            // A 51-point similarity fit cannot move a turned head's eyes onto the mean face's.
            assert!(
                canonical < 0.05,
                "{name}: eyes {canonical:.3} from the mean face's"
            );
        }
    }
    println!(
        "worst distance from the mean face's eye centres: {:.2}% of the crop",
        worst_canonical * 100.0
    );
}

#[test]
fn face_and_head_centering_follow_the_head_pose() {
    use faceswapd::geometry::{HeadPose, centered_matrix};
    let mut ex = extractor(ExtractSettings::default());
    let size = 256u32;
    for name in [
        "grace_hopper.jpg",
        "luis_pedro_coelho_mahotas.jpg",
        "vladmandic_faceapi_sample3_multiface.jpg",
    ] {
        let pyr = Pyramid::new(load_image(&asset(name)).unwrap());
        for face in ex.process(&pyr, &mut StageTimings::default()).unwrap() {
            let lm = face.landmarks68();
            let mut aligned = [[0.0; 2]; 68];
            for (a, p) in aligned.iter_mut().zip(&lm) {
                *a = face.legacy.apply(*p);
            }
            let pose = HeadPose::solve(&aligned);
            let crop = crop_matrix(
                &centered_matrix(&face.legacy, &lm, Centering::Face),
                size,
                Centering::Face,
            );
            let again = faces_in(
                &mut ex,
                pyr.warp_rgb(&crop.inverse().unwrap(), size as usize),
            );
            assert_eq!(again.len(), 1, "{name}");
            // faceswap's face centre (0, -1.5, 4.2) lies ~27 % of the way from the eyes down to
            // the nose tip; in a face-centred crop it must sit at the centre.
            let (l, r) = eye_centres(&again[0].landmarks);
            let eyes = [(l[0] + r[0]) / 2.0, (l[1] + r[1]) / 2.0];
            let nose = again[0].landmarks[30];
            let centre = [
                eyes[0] + 0.27 * (nose[0] - eyes[0]),
                eyes[1] + 0.27 * (nose[1] - eyes[1]),
            ];
            let off = dist(centre, [size as f64 / 2.0, size as f64 / 2.0]) / size as f64;
            println!(
                "{name}: pose fit rms {:.3}, face offset {:?}, face-centre {:.1}% of the crop from its middle",
                pose.rms,
                pose.offset(Centering::Face),
                off * 100.0
            );
            assert!(pose.rms < 0.08, "{name}: pose fit {}", pose.rms);
            assert!(
                off < 0.05,
                "{name}: face centre {off:.3} from the crop centre"
            );
        }
    }
}

fn request(input: &Path, output: &Path) -> ExtractRequest {
    ExtractRequest {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        size: 128,
        centering: Centering::Legacy,
        every_nth: 1,
        settings: ExtractSettings::default(),
        smoothing: Some(Default::default()),
    }
}

#[test]
fn a_folder_extracts_to_a_store_and_traceable_face_files_and_resumes() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("images");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(asset("grace_hopper.jpg"), input.join("a_hopper.jpg")).unwrap();
    std::fs::copy(
        asset("vladmandic_faceapi_sample3_multiface.jpg"),
        input.join("b_three.jpg"),
    )
    .unwrap();
    // No face at all: a plain gradient.
    let blank: Vec<u8> = (0..64 * 64 * 3).map(|i| (i % 200) as u8).collect();
    image::save_buffer(
        input.join("c_blank.png"),
        &blank,
        64,
        64,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    std::fs::write(input.join("d_broken.jpg"), b"\xFF\xD8\xFF not a jpeg").unwrap();
    let out = root.path().join("faceset");
    let summary = run_extraction(&request(&input, &out), &models(), |_, _| true).unwrap();
    println!("{}", summary.report().join("\n"));
    assert_eq!(summary.faces, 4);
    assert_eq!(summary.empty_frames, 1);
    assert_eq!(
        summary.unreadable.len(),
        1,
        "the broken file is reported, not fatal"
    );
    let store = Alignments::load(&out.join(ALIGNMENTS_FILE)).unwrap();
    assert_eq!(store.accepted(), 4);
    let three = store
        .frames
        .values()
        .find(|f| f.name == "b_three.jpg")
        .unwrap();
    assert_eq!(three.faces.len(), 3);
    let file = out.join(three.faces[1].file.as_ref().unwrap());
    let meta = read_face_meta(&file).unwrap();
    assert_eq!(
        (meta.frame_name.as_str(), meta.face_index, meta.size),
        ("b_three.jpg", 1, 128)
    );
    assert_eq!(meta.landmarks, three.faces[1].face.landmarks);

    // A second run resumes: nothing to redo.
    let again = run_extraction(&request(&input, &out), &models(), |_, _| true).unwrap();
    assert_eq!((again.frames, again.resumed_frames), (0, 3));
}

#[test]
fn corrupt_video_missing_and_tampered_models_fail_clearly_without_losing_output() {
    let root = tempfile::tempdir().unwrap();
    let bad = root.path().join("bad.mp4");
    std::fs::write(&bad, b"\x00\x00\x00\x18ftypisom definitely not a video").unwrap();
    let err = run_extraction(
        &request(&bad, &root.path().join("o1")),
        &models(),
        |_, _| true,
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::Media(_)), "{err}");
    assert!(err.to_string().contains("bad.mp4"), "{err}");

    // A good run first, then a tampered model: the error names the fix, the output survives.
    let input = root.path().join("img");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(asset("grace_hopper.jpg"), input.join("hopper.jpg")).unwrap();
    let out = root.path().join("faceset");
    run_extraction(&request(&input, &out), &models(), |_, _| true).unwrap();
    let before = std::fs::read(out.join(ALIGNMENTS_FILE)).unwrap();

    let real = Dirs::resolve().unwrap();
    let fake = Dirs {
        data: root.path().join("data"),
        cache: root.path().join("cache"),
        config: root.path().join("config"),
    };
    std::fs::create_dir_all(fake.models()).unwrap();
    std::fs::create_dir_all(fake.runtime_libs()).unwrap();
    for f in std::fs::read_dir(real.runtime_libs()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, fake.runtime_libs().join(f.file_name().unwrap())).unwrap();
    }
    let err = faceswapd::extract::default_models(&fake)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("face_detection_short_range.onnx") && err.contains("assets fetch"),
        "missing model: {err}"
    );
    for f in std::fs::read_dir(real.models()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, fake.models().join(f.file_name().unwrap())).unwrap();
    }
    let victim = fake.models().join("face_landmark.onnx");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&victim, bytes).unwrap();
    let err = faceswapd::extract::default_models(&fake)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("face_landmark.onnx") && err.contains("assets fetch --models"),
        "{err}"
    );
    // A model file that is not ONNX at all, loaded directly: a clear error, no crash.
    let mut files = models();
    files.face_mesh = root.path().join("bogus.onnx");
    std::fs::write(&files.face_mesh, b"garbage").unwrap();
    let err = run_extraction(&request(&input, &out), &files, |_, _| true).unwrap_err();
    assert!(err.to_string().contains("bogus.onnx"), "{err}");
    assert_eq!(
        std::fs::read(out.join(ALIGNMENTS_FILE)).unwrap(),
        before,
        "earlier output intact"
    );
}

#[test]
fn tracking_follows_the_face_with_few_detector_runs() {
    let video = asset("WolfgangLanger_Pexels.mp4");
    let mut frames = Vec::new();
    faceswapd::media::decode_video::<faceswapd::media::MediaError>(
        &video,
        |i| (240..=330).contains(&i),
        |_, _, f| {
            frames.push(f);
            Ok(true)
        },
    )
    .unwrap();
    let mut every = extractor(ExtractSettings::default());
    let mut tracker = extractor(ExtractSettings::default());
    let (mut previous, mut since, mut detector_runs) = (Vec::new(), 0u32, 0);
    let mut errors = Vec::new();
    for f in frames {
        let pyr = Pyramid::new(f);
        let reference = every.process(&pyr, &mut StageTimings::default()).unwrap();
        let mut t = StageTimings::default();
        let tracked = tracker
            .process_tracked(&pyr, &previous, &mut since, &mut t)
            .unwrap();
        if !t.detect.is_zero() {
            detector_runs += 1;
        }
        assert_eq!((reference.len(), tracked.len()), (1, 1));
        let (l, r) = eye_centres(&reference[0].landmarks);
        let iod = dist(l, r);
        let err: f64 = tracked[0]
            .landmarks
            .iter()
            .zip(&reference[0].landmarks)
            .map(|(a, b)| dist(*a, *b))
            .sum::<f64>()
            / 68.0
            / iod;
        errors.push(err);
        previous = tracked;
    }
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    println!(
        "tracking over {} frames: {detector_runs} detector runs, median landmark difference from per-frame detection {:.2}% of IOD",
        errors.len(),
        median * 100.0
    );
    assert!(
        detector_runs <= errors.len() / 5,
        "{detector_runs} detector runs"
    );
    assert!(median < 0.03, "tracked landmarks drift: {median}");
}

#[test]
fn tracking_finds_faces_that_enter_at_the_next_redetection_without_doubling_followed_ones() {
    let still = load_image(&asset("vladmandic_faceapi_sample3_multiface.jpg")).unwrap();
    let mut ex = extractor(ExtractSettings::default());
    let all = faces_in(&mut ex, still.clone());
    assert_eq!(all.len(), 3);
    // The same picture with two of the three people painted out: one face.
    let mut one = still.clone();
    for f in &all[1..] {
        let [x0, y0, x1, y1] = f.bbox;
        let (w, h) = (x1 - x0, y1 - y0);
        let (xa, xb) = (
            (x0 - 0.3 * w).max(0.0) as usize,
            ((x1 + 0.3 * w) as usize).min(one.width as usize),
        );
        let (ya, yb) = (
            (y0 - 0.5 * h).max(0.0) as usize,
            ((y1 + 0.3 * h) as usize).min(one.height as usize),
        );
        for y in ya..yb {
            let row = y * one.width as usize * 3;
            one.data[row + xa * 3..row + xb * 3].fill(0);
        }
    }
    assert_eq!(faces_in(&mut ex, one.clone()).len(), 1, "painted out");
    let redetect = ExtractSettings::default().redetect_every as usize;
    let (mut previous, mut since) = (Vec::new(), 0u32);
    let mut counts = Vec::new();
    for i in 0..3 * redetect {
        let frame = if i < redetect + 2 {
            one.clone()
        } else {
            still.clone()
        };
        let faces = ex
            .process_tracked(
                &Pyramid::new(frame),
                &previous,
                &mut since,
                &mut StageTimings::default(),
            )
            .unwrap();
        counts.push(faces.len());
        previous = faces;
    }
    println!("faces per frame: {counts:?}");
    // One face while one is there; the other two appear at the next re-detection (frame 2·N at
    // the latest), and the followed face is never found twice.
    assert!(counts[..redetect + 2].iter().all(|&c| c == 1), "{counts:?}");
    assert!(counts.iter().all(|&c| c <= 3), "{counts:?}");
    assert!(counts[2 * redetect..].iter().all(|&c| c == 3), "{counts:?}");
}

#[test]
fn a_face_limit_keeps_the_largest_faces_and_stops_re_detection_once_reached() {
    let still = load_image(&asset("vladmandic_faceapi_sample3_multiface.jpg")).unwrap();
    let area = |f: &Face| (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
    let mut all = faces_in(&mut extractor(ExtractSettings::default()), still.clone());
    assert_eq!(all.len(), 3);
    all.sort_by(|a, b| area(b).total_cmp(&area(a)));
    let limited = |max_faces| ExtractSettings {
        max_faces,
        ..ExtractSettings::default()
    };
    let two = faces_in(&mut extractor(limited(2)), still.clone());
    assert_eq!(two.len(), 2);
    for f in &two {
        assert!(
            all[..2].iter().any(|a| (a.bbox[0] - f.bbox[0]).abs() < 1.0),
            "kept a face that is not among the two largest: {:?}",
            f.bbox
        );
    }
    // Tracking 3 faces over 3·N frames: the detector runs at the start and then only while
    // fewer than the limit are followed.
    let redetect = ExtractSettings::default().redetect_every;
    for (max_faces, faces, runs) in [(1, 1, 1), (3, 3, 1), (0, 3, 4), (4, 3, 4)] {
        let mut ex = extractor(limited(max_faces));
        let (mut previous, mut since, mut detector_runs) = (Vec::new(), 0u32, 0);
        for _ in 0..3 * redetect + 1 {
            let mut t = StageTimings::default();
            let found = ex
                .process_tracked(&Pyramid::new(still.clone()), &previous, &mut since, &mut t)
                .unwrap();
            assert_eq!(found.len(), faces, "limit {max_faces}");
            detector_runs += usize::from(!t.detect.is_zero());
            previous = found;
        }
        println!("limit {max_faces}: {faces} faces, {detector_runs} detector runs");
        assert_eq!(detector_runs, runs, "limit {max_faces}");
        if max_faces == 1 {
            assert!((previous[0].bbox[0] - all[0].bbox[0]).abs() < 0.1 * area(&all[0]).sqrt());
        }
    }
}

#[test]
fn a_video_extracts_in_parallel_ranges_stops_and_resumes() {
    let video = asset("WolfgangLanger_Pexels.mp4");
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("faceset");
    let mut req = request(&video, &out);
    req.every_nth = 8;
    // Stop after 10 frames: the store keeps what was done.
    let mut seen = 0;
    let err = run_extraction(&req, &models(), |_, _| {
        seen += 1;
        seen < 10
    })
    .unwrap_err();
    assert!(matches!(err, ExtractError::Stopped), "{err}");
    let partial = Alignments::load(&out.join(ALIGNMENTS_FILE)).unwrap();
    assert!(
        partial.frames.len() >= 10 && partial.frames.len() < 59,
        "{}",
        partial.frames.len()
    );
    // Resume: only the missing frames are processed.
    let summary = run_extraction(&req, &models(), |_, _| true).unwrap();
    println!("{}", summary.report().join("\n"));
    assert_eq!(summary.resumed_frames as usize, partial.frames.len());
    let store = Alignments::load(&out.join(ALIGNMENTS_FILE)).unwrap();
    assert_eq!(store.frames.len(), 59, "every 8th of 472 frames");
    assert!(store.frames.keys().all(|i| i % 8 == 0));
    for (i, f) in store.frames.range(240..) {
        assert_eq!(
            f.faces.iter().filter(|x| x.face.rejected.is_none()).count(),
            1,
            "frame {i}"
        );
        assert_eq!(f.name, format!("frame_{i:06}"));
        assert!(f.pts.is_some());
    }
    let files = std::fs::read_dir(out.join("faces")).unwrap().count()
        + std::fs::read_dir(out.join("rejected")).unwrap().count();
    let recorded: usize = store.frames.values().map(|f| f.faces.len()).sum();
    assert_eq!(files, recorded, "one file per recorded face, no leftovers");
}

/// `(index, pts, pixel fingerprint)` of each frame at or after `first`, decoded with seeking.
fn frames_from(video: &Path, first: u64) -> Vec<(u64, Option<i64>, u64)> {
    let mut out = Vec::new();
    faceswapd::media::decode_video_from::<faceswapd::media::MediaError>(
        video,
        first,
        |i| i >= first,
        |i, pts, f| {
            out.push((i, pts, xxhash_rust::xxh3::xxh3_64(&f.data)));
            Ok(true)
        },
    )
    .unwrap();
    out
}

#[test]
fn decoding_from_a_frame_seeks_yet_numbers_and_decodes_frames_as_from_the_start() {
    let root = tempfile::tempdir().unwrap();
    // B-frames and open GOPs (leading pictures reference the GOP before the keyframe).
    let open_gop = root.path().join("open_gop.mp4");
    faceswap_tests::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=24",
            "-frames:v",
            "120",
            "-c:v",
            "libx264",
            "-bf",
            "3",
            "-g",
            "20",
            "-x264-params",
            "open-gop=1:scenecut=0",
            "-pix_fmt",
            "yuv420p",
        ],
        &open_gop,
    );
    // Cut off the start with stream copy: an edit list whose first packets are discarded.
    let edit_list = root.path().join("edit_list.mp4");
    let src = open_gop.display().to_string();
    faceswap_tests::ffmpeg(&["-ss", "0.55", "-i", &src, "-c", "copy"], &edit_list);
    let pexels = asset("WolfgangLanger_Pexels.mp4");
    for (video, starts) in [
        (&pexels, &[1u64, 71, 72, 73, 236, 300, 471][..]),
        (&open_gop, &[19, 20, 21, 45, 61, 100, 119][..]),
        (&edit_list, &[5, 30, 60][..]),
    ] {
        let all = frames_from(video, 0);
        for &s in starts {
            let from = frames_from(video, s);
            assert_eq!(
                from[..],
                all[s as usize..],
                "{}: frames from {s}",
                video.display()
            );
        }
        println!(
            "{}: {} frames; {starts:?} match",
            video.display(),
            all.len()
        );
    }
}
