//! faceswap's clean-up tools on fixture facesets: every sort method, grouping, and the
//! alignments jobs (remove-faces round trip, multi-faces, no-faces, missing-frames, draw,
//! spatial).

use std::path::Path;

use faceswap_tests::{copy_fixtures, extract_faceset, test_asset};
use faceswapd::faceset::store::Alignments;
use faceswapd::faceset::{ALIGNMENTS_FILE, encode_face_png, read_face_meta};
use faceswapd::media::RgbFrame;
use faceswapd::tools::{self, SortMethod};

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Photos (Hopper, Collins, mahotas, the three women, and a picture without a face) extracted
/// at 96 px, plus a blurred copy of Hopper's face file with her metadata.
fn faceset(root: &Path) -> std::path::PathBuf {
    let photos = root.join("photos");
    copy_fixtures(
        &photos,
        &[
            "grace_hopper.jpg",
            "eileen_collins_astronaut.png",
            "luis_pedro_coelho_mahotas.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
    )
    .unwrap();
    image::RgbImage::from_pixel(320, 240, image::Rgb([90, 120, 150]))
        .save(photos.join("wall.png"))
        .unwrap();
    let faceset = root.join("faces");
    extract_faceset(&photos, &faceset, 96).unwrap();
    let hopper = std::fs::read_dir(faceset.join("faces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| name(p).starts_with("photos_000000"))
        .unwrap();
    let meta = read_face_meta(&hopper).unwrap();
    let img = image::open(&hopper).unwrap().to_rgb8();
    let blurred = image::imageops::blur(&img, 2.5);
    let frame = RgbFrame {
        width: 96,
        height: 96,
        data: blurred.into_raw(),
    };
    std::fs::write(
        faceset.join("faces/zz_hopper_blurred.png"),
        encode_face_png(&frame, &meta).unwrap(),
    )
    .unwrap();
    faceset
}

#[test]
fn every_sort_method_orders_the_fixture_faces() {
    let root = tempfile::tempdir().unwrap();
    let set = faceset(root.path());
    let store = Alignments::load(&set.join(ALIGNMENTS_FILE)).unwrap();
    let hopper = |sorted: &[tools::Sorted]| {
        let at =
            |pred: &dyn Fn(&str) -> bool| sorted.iter().position(|s| pred(&name(&s.file))).unwrap();
        (
            at(&|n: &str| n.starts_with("photos_000000")),
            at(&|n: &str| n.starts_with("zz_hopper")),
        )
    };
    for (method, label) in [
        (SortMethod::Blur, "blur"),
        (SortMethod::BlurFft, "blur-fft"),
        (SortMethod::Distance, "distance"),
        (SortMethod::Yaw, "yaw"),
        (SortMethod::Pitch, "pitch"),
        (SortMethod::Roll, "roll"),
        (SortMethod::Histogram, "hist"),
        (SortMethod::Size, "size"),
        (SortMethod::Face, "face"),
    ] {
        let sorted = tools::sort_faces(&set, method).unwrap();
        assert_eq!(sorted.len(), 7, "{label}");
        let line: Vec<String> = sorted
            .iter()
            .map(|s| {
                format!(
                    "{}={:.2}",
                    &name(&s.file)[..14.min(name(&s.file).len())],
                    s.score
                )
            })
            .collect();
        println!("{label}: {}", line.join(" "));
        let scores: Vec<f64> = sorted.iter().map(|s| s.score).collect();
        let (sharp, soft) = hopper(&sorted);
        match method {
            // Sharpest first: the blurred copy comes after the original.
            SortMethod::Blur | SortMethod::BlurFft => {
                assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{label}");
                assert!(
                    soft > sharp,
                    "{label}: blurred copy at {soft}, original at {sharp}"
                );
            }
            SortMethod::Size => assert!(scores.windows(2).all(|w| w[0] >= w[1])),
            SortMethod::Distance | SortMethod::Yaw | SortMethod::Pitch | SortMethod::Roll => {
                assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{label}")
            }
            // Chains: the copy sits next to its original.
            SortMethod::Histogram | SortMethod::Face => {
                assert_eq!(sharp.abs_diff(soft), 1, "{label}")
            }
        }
        if method == SortMethod::Distance {
            // The same measure extraction stored.
            for s in &sorted {
                let meta = read_face_meta(&s.file).unwrap();
                let stored = &store.frames[&meta.frame].faces[meta.face_index as usize];
                assert!((stored.face.distance - s.score).abs() < 1e-6);
            }
        }
        if method == SortMethod::Yaw {
            // The turned head (mahotas) is the most yawed.
            let most = sorted
                .iter()
                .max_by(|a, b| a.score.abs().total_cmp(&b.score.abs()))
                .unwrap();
            assert!(
                name(&most.file).starts_with("photos_000002"),
                "{}",
                most.file.display()
            );
        }
    }
    let sorted = tools::sort_faces(&set, SortMethod::Blur).unwrap();
    let files = tools::write_sorted(&sorted, &root.path().join("groups"), 3).unwrap();
    assert_eq!(files.len(), 7);
    let groups = std::fs::read_dir(root.path().join("groups"))
        .unwrap()
        .count();
    assert_eq!(groups, 3);
    assert!(name(&files[0]).starts_with("00000_"));
}

#[test]
fn alignments_jobs_on_the_fixture_faceset() {
    let root = tempfile::tempdir().unwrap();
    let set = faceset(root.path());
    std::fs::remove_file(set.join("faces/zz_hopper_blurred.png")).unwrap();
    let photos = root.path().join("photos");
    assert_eq!(
        tools::multi_faces(&set).unwrap(),
        vec![3],
        "the three women"
    );
    assert_eq!(tools::no_faces(&set).unwrap(), vec![4], "the wall");
    assert!(tools::missing_frames(&set, &photos).unwrap().is_empty());

    // The same tools as daemon jobs through the CLI.
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = faceswap_tests::DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let run = |args: &[&str]| {
        let out = d.cli(args).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success());
        text
    };
    let set_arg = set.display().to_string();
    assert!(
        run(&["alignments", "multi-faces", &set_arg]).contains("1 frames with several faces: 3")
    );
    assert!(run(&["alignments", "no-faces", &set_arg]).contains("1 frames without a face: 4"));
    let sorted = root.path().join("by_size");
    let text = run(&[
        "sort",
        &set_arg,
        "--by",
        "size",
        "--out",
        &sorted.display().to_string(),
    ]);
    assert!(text.contains("6 faces sorted by size"), "{text}");
    assert_eq!(std::fs::read_dir(&sorted).unwrap().count(), 6);
    let jobs = run(&["jobs", "list"]);
    assert!(
        jobs.contains("multi-faces") && jobs.contains("sort"),
        "{jobs}"
    );

    // Draw: boxes and landmarks over the frames with faces.
    let drawn = root.path().join("drawn");
    assert_eq!(tools::draw(&set, &photos, &drawn).unwrap(), 4);
    let store = Alignments::load(&set.join(ALIGNMENTS_FILE)).unwrap();
    let img = image::open(drawn.join("frame_000000.png"))
        .unwrap()
        .to_rgb8();
    let nose = store.frames[&0].faces[0].face.landmarks[30];
    assert_eq!(
        img.get_pixel(nose[0].round() as u32, nose[1].round() as u32)
            .0,
        [255, 255, 0]
    );

    // remove-faces: delete two face files, the alignments follow; a second run changes nothing.
    let victims: Vec<String> = store.frames[&3].faces[..2]
        .iter()
        .map(|f| f.file.clone().unwrap())
        .collect();
    for v in &victims {
        std::fs::remove_file(set.join(v)).unwrap();
    }
    assert_eq!(tools::remove_faces(&set).unwrap(), 2);
    let after = Alignments::load(&set.join(ALIGNMENTS_FILE)).unwrap();
    assert_eq!(after.frames[&3].faces.len(), 1);
    assert_eq!(after.frames[&0], store.frames[&0], "other frames untouched");
    assert!(
        after
            .frames
            .values()
            .flat_map(|e| &e.faces)
            .all(|f| !victims.contains(f.file.as_ref().unwrap()))
    );
    let bytes = std::fs::read(set.join(ALIGNMENTS_FILE)).unwrap();
    assert_eq!(tools::remove_faces(&set).unwrap(), 0);
    assert_eq!(std::fs::read(set.join(ALIGNMENTS_FILE)).unwrap(), bytes);
    assert_eq!(tools::multi_faces(&set).unwrap(), Vec::<u64>::new());
}

#[test]
fn missing_frames_and_spatial_smoothing_on_a_video() {
    use faceswapd::faceset::face::ExtractSettings;
    use faceswapd::geometry::Centering;
    use faceswapd::track::jitter;
    let root = tempfile::tempdir().unwrap();
    let video = test_asset("WolfgangLanger_Pexels.mp4").unwrap();
    let models =
        faceswapd::extract::default_models(&faceswapd::paths::Dirs::resolve().unwrap()).unwrap();
    let extract = |out: &Path, every_nth: u32| {
        let req = faceswapd::extract::ExtractRequest {
            input: video.clone(),
            output: out.to_path_buf(),
            size: 64,
            centering: Centering::DflFull,
            every_nth,
            settings: ExtractSettings::default(),
            smoothing: None,
        };
        faceswapd::extract::run_extraction(&req, &models, |_, _| true).unwrap();
    };
    // Every 2nd frame: the other half is missing.
    let halves = root.path().join("halves");
    extract(&halves, 2);
    let missing = tools::missing_frames(&halves, &video).unwrap();
    assert_eq!(missing.len(), 236);
    assert!(missing.iter().all(|i| i % 2 == 1));

    // Spatial on an unsmoothed extraction: jitter falls, the face files are rewritten after.
    let raw = root.path().join("raw");
    extract(&raw, 1);
    let jitter_of = |dir: &Path| {
        let s = Alignments::load(&dir.join(ALIGNMENTS_FILE)).unwrap();
        let faces: Vec<(u64, faceswapd::faceset::face::Face)> = s
            .frames
            .iter()
            .map(|(i, e)| (*i, e.faces[0].face.clone()))
            .collect();
        let refs: Vec<(u64, &faceswapd::faceset::face::Face)> =
            faces.iter().map(|(i, f)| (*i, f)).collect();
        jitter(&refs).unwrap()
    };
    let before = jitter_of(&raw);
    assert_eq!(
        faceswapd::track::spatial(&raw, Default::default()).unwrap(),
        472
    );
    let after = jitter_of(&raw);
    println!(
        "spatial: jitter {:.2}% → {:.2}% of the eye distance",
        before * 100.0,
        after * 100.0
    );
    assert!(after < 0.6 * before);
    let n = faceswapd::extract::export_faces(&raw, &video, 64, Centering::DflFull).unwrap();
    assert_eq!(n, 472);
}

/// `faceswapd faceset average` runs in a daemon job and writes the asked-for faces.
#[test]
fn the_cli_averages_facesets_in_a_daemon_job() {
    let root = tempfile::tempdir().unwrap();
    let a = faceswap_tests::faceset_from_photos(
        root.path(),
        &[
            "grace_hopper.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
        64,
    )
    .unwrap();
    let out = root.path().join("average");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = faceswap_tests::DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let text = d
        .cli_job(
            &[
                "faceset",
                "average",
                &a.display().to_string(),
                "--out",
                &out.display().to_string(),
                "--count",
                "3",
            ],
            "faceset-average",
        )
        .unwrap();
    println!("{text}");
    assert!(text.contains("averaged 4 faces"), "{text}");
    assert_eq!(std::fs::read_dir(out.join("faces")).unwrap().count(), 3);
}
