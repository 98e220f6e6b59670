//! XSeg: it learns what covers a face and beats the mean label on hand-labelled occluded faces;
//! labels live with the faces, training checkpoints and resumes, runs as a daemon job and
//! survives SIGKILLs.

use std::path::Path;

use faceswap_tests::{copy_fixtures, extract_faceset, faceset_from_photos, test_asset};
use faceswapd::faceset::{load_store, read_face_meta};
use faceswapd::masks::xseg::{LabelPolygon, rasterize_labels};
use faceswapd::warp::convex_hull;

const R: usize = 64;

/// xorshift64*: the test's own seeded numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// A face polygon for training labels: the 68 landmarks' hull with the brows lifted to about
/// the hairline (each brow point moves away from the eye line by twice its distance to it),
/// the convention of the hand-drawn labels below.
fn face_outline(lm: &[[f64; 2]; 68]) -> Vec<[f64; 2]> {
    let mut pts = lm.to_vec();
    let eyes = [
        lm[36], lm[37], lm[38], lm[39], lm[39], lm[42], lm[42], lm[43], lm[44], lm[45],
    ];
    for (k, eye) in eyes.iter().enumerate() {
        let b = lm[17 + k];
        pts.push([b[0] + 2.0 * (b[0] - eye[0]), b[1] + 2.0 * (b[1] - eye[1])]);
    }
    convex_hull(&pts)
}

/// Labels the faces of `faceset` whose frame `pick` accepts with their face outline; returns
/// how many faces were labelled.
fn label_for_training(faceset: &Path, pick: impl Fn(u64) -> bool) -> usize {
    let (path, mut store) = load_store(faceset).unwrap();
    let mut n = 0;
    for (_, entry) in store.frames.iter_mut().filter(|(f, _)| pick(**f)) {
        for f in entry.faces.iter_mut().filter(|f| f.file.is_some()) {
            f.labels = vec![LabelPolygon {
                include: true,
                points: face_outline(&f.face.landmarks68()),
            }];
            n += 1;
        }
    }
    store.save(&path).unwrap();
    n
}

/// One hand-drawn face of `tests/data/xseg-hand-labels/labels.toml`.
#[derive(serde::Deserialize)]
struct HandLabel {
    frame: u64,
    include: Vec<[f64; 2]>,
    exclude: Vec<[f64; 2]>,
}

/// The file holding them.
#[derive(serde::Deserialize)]
struct HandLabels {
    face: Vec<HandLabel>,
}

/// Intersection and union of a predicted plane (thresholded at 0.5) with a label plane.
fn overlap(pred: &[f32], truth: &[f32]) -> (usize, usize) {
    pred.iter().zip(truth).fold((0, 0), |(i, u), (p, t)| {
        let (p, t) = (*p > 0.5, *t > 0.5);
        (i + (p && t) as usize, u + (p || t) as usize)
    })
}

/// XSeg beats a constant on real occluded faces: a model trained through the product's training
/// run (`train_xseg`, the `xseg train` job's) on other faces — the fixture stills and the Pexels
/// clip's frames from 240 on, each labelled with its outline — and applied to the clip
/// (`apply_xseg`) is scored on six frames (100–225) where a hand covers the face, labelled by
/// hand (include: the face, exclude: the hand). Its IoU must pass the mean-label predictor's
/// (the training labels' mean in the aligned crop, thresholded) by at least 0.05. How much of
/// the hand each keeps is printed: nothing in this training shows a hand, so the model's lead
/// is the face's own outline, not the hand left out.
#[test]
fn xseg_beats_the_mean_label_on_hand_labelled_occluded_faces() {
    use faceswap_models::ComputeDevice;
    use faceswapd::masks::STORED_SIZE;
    use faceswapd::masks::xseg::{XsegTrainRequest, apply_xseg, train_xseg};

    let labels_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/xseg-hand-labels/labels.toml");
    let labels = toml::from_str::<HandLabels>(&std::fs::read_to_string(labels_file).unwrap())
        .unwrap()
        .face;
    assert_eq!(labels.len(), 6);

    let root = tempfile::tempdir().unwrap();
    let photos = root.path().join("photos");
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
    let (stills, video) = (root.path().join("stills"), root.path().join("video"));
    extract_faceset(&photos, &stills, R as u32).unwrap();
    extract_faceset(
        &test_asset("WolfgangLanger_Pexels.mp4").unwrap(),
        &video,
        R as u32,
    )
    .unwrap();
    let trained = label_for_training(&stills, |_| true)
        + label_for_training(&video, |f| f >= 240 && f % 2 == 0);
    println!("{trained} training faces");
    assert!(trained >= 120, "{trained}");

    let model = root.path().join("xseg");
    let steps = 300;
    let summary = train_xseg(
        &XsegTrainRequest {
            facesets: vec![stills.clone(), video.clone()],
            model_dir: model.clone(),
            resolution: R as u32,
            base: 12,
            steps,
            batch: 8,
            lr: 2e-3,
            seed: 7,
            save_every: steps,
            device: ComputeDevice::CPU,
        },
        |_, _| true,
    )
    .unwrap();
    println!("losses {:?}", summary.losses);
    apply_xseg(&video, &model, ComputeDevice::CPU).unwrap();

    // The mean-label predictor, in the stored masks' crop.
    let size = STORED_SIZE as usize;
    let mut mean = vec![0f32; size * size];
    let mut count = 0;
    for set in [&stills, &video] {
        let (_, store) = load_store(set).unwrap();
        for f in store.frames.values().flat_map(|e| &e.faces) {
            let (Some(file), false) = (&f.file, f.labels.is_empty()) else {
                continue;
            };
            let meta = read_face_meta(&set.join(file)).unwrap();
            let plane = rasterize_labels(&f.labels, &meta.crop_at(size), size);
            mean.iter_mut().zip(&plane.data).for_each(|(m, v)| *m += v);
            count += 1;
        }
    }
    mean.iter_mut().for_each(|m| *m /= count as f32);

    let (_, store) = load_store(&video).unwrap();
    let iou = |(i, u): (usize, usize)| i as f64 / u.max(1) as f64;
    let (mut ours, mut baseline) = ((0, 0), (0, 0));
    for label in &labels {
        let faces = &store.frames[&label.frame].faces;
        assert_eq!(faces.len(), 1, "frame {}", label.frame);
        let stored = &faces[0].masks["xseg"];
        let truth = rasterize_labels(
            &[
                LabelPolygon {
                    include: true,
                    points: label.include.clone(),
                },
                LabelPolygon {
                    include: false,
                    points: label.exclude.clone(),
                },
            ],
            &stored.matrix,
            size,
        );
        let pred = stored.plane().unwrap().data;
        let (a, b) = (overlap(&pred, &truth.data), overlap(&mean, &truth.data));
        // The hand where it covers the face: inside the include polygon, inside the exclusion.
        let hand = rasterize_labels(
            &[LabelPolygon {
                include: true,
                points: label.exclude.clone(),
            }],
            &stored.matrix,
            size,
        );
        let face = rasterize_labels(
            &[LabelPolygon {
                include: true,
                points: label.include.clone(),
            }],
            &stored.matrix,
            size,
        );
        let kept = |p: &[f32]| {
            let on_hand = (0..p.len()).filter(|&i| hand.data[i] > 0.5 && face.data[i] > 0.5);
            let (n, k) = on_hand.fold((0, 0), |(n, k), i| (n + 1, k + (p[i] > 0.5) as usize));
            k as f64 / n.max(1) as f64
        };
        println!(
            "frame {}: xseg IoU {:.3} (hand kept {:.0} %), mean label {:.3} (hand kept {:.0} %)",
            label.frame,
            iou(a),
            kept(&pred) * 100.0,
            iou(b),
            kept(&mean) * 100.0
        );
        ours = (ours.0 + a.0, ours.1 + a.1);
        baseline = (baseline.0 + b.0, baseline.1 + b.1);
    }
    println!(
        "hand-labelled occluded faces: xseg IoU {:.3}, mean-label IoU {:.3}",
        iou(ours),
        iou(baseline)
    );
    assert!(
        iou(ours) >= iou(baseline) + 0.05,
        "xseg {:.3} does not beat the mean label {:.3} by 0.05",
        iou(ours),
        iou(baseline)
    );
}

/// Hopper and Collins extracted at 64 px under `root`, every face labelled with its hull
/// (and, when `cut_mouth`, a box over the mouth excluded).
fn labelled_pair(root: &Path, cut_mouth: bool) -> std::path::PathBuf {
    let faceset = faceset_from_photos(
        root,
        &["grace_hopper.jpg", "eileen_collins_astronaut.png"],
        64,
    )
    .unwrap();
    label_with_hulls(&faceset, cut_mouth);
    faceset
}

/// Labels every face of a faceset with its landmark hull (and, when `cut_mouth`, excludes a
/// box over the mouth).
fn label_with_hulls(faceset: &Path, cut_mouth: bool) {
    use faceswapd::faceset::ALIGNMENTS_FILE;
    use faceswapd::faceset::store::Alignments;
    use faceswapd::masks::xseg::LabelPolygon;
    use faceswapd::warp::convex_hull;
    let path = faceset.join(ALIGNMENTS_FILE);
    let mut store = Alignments::load(&path).unwrap();
    for f in store.frames.values_mut().flat_map(|e| e.faces.iter_mut()) {
        let lm = f.face.landmarks68();
        let (mx, my) = (lm[62][0], lm[62][1]);
        f.labels = vec![LabelPolygon {
            include: true,
            points: convex_hull(&lm),
        }];
        if cut_mouth {
            f.labels.push(LabelPolygon {
                include: false,
                points: vec![
                    [mx - 8.0, my - 6.0],
                    [mx + 8.0, my - 6.0],
                    [mx + 8.0, my + 6.0],
                    [mx - 8.0, my + 6.0],
                ],
            });
        }
    }
    store.save(&path).unwrap();
}

/// Labels stored with the faces, a training run that checkpoints and resumes, and apply
/// writing an `xseg` mask for every face.
#[test]
fn labelled_faces_train_resume_and_apply() {
    use faceswap_models::ComputeDevice;
    use faceswapd::faceset::ALIGNMENTS_FILE;
    use faceswapd::faceset::store::Alignments;
    use faceswapd::masks::xseg::{
        XsegTrainRequest, apply_xseg, fetch_labelled, remove_labels, train_xseg,
    };

    let root = tempfile::tempdir().unwrap();
    let faceset = faceset_from_photos(
        root.path(),
        &[
            "grace_hopper.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
        64,
    )
    .unwrap();
    // Label every face with its landmark hull, minus a box over the mouth.
    label_with_hulls(&faceset, true);
    let path = faceset.join(ALIGNMENTS_FILE);
    let fetched = fetch_labelled(&faceset, &root.path().join("labelled")).unwrap();
    assert_eq!(fetched, 4);

    let model = root.path().join("xseg");
    let req = |steps| XsegTrainRequest {
        facesets: vec![faceset.clone()],
        model_dir: model.clone(),
        resolution: 32,
        base: 8,
        steps,
        batch: 4,
        lr: 2e-3,
        seed: 5,
        save_every: 20,
        device: ComputeDevice::CPU,
    };
    let first = train_xseg(&req(40), |_, _| true).unwrap();
    let second = train_xseg(&req(60), |_, _| true).unwrap();
    println!("first run {:?}, resumed {:?}", first.losses, second.losses);
    assert_eq!((first.faces, first.start_step, first.end_step), (4, 0, 40));
    assert_eq!(
        (second.start_step, second.end_step),
        (40, 60),
        "resumes from the checkpoint"
    );
    let applied = apply_xseg(&faceset, &model, ComputeDevice::CPU).unwrap();
    assert_eq!(applied, 4);
    let store = Alignments::load(&path).unwrap();
    for f in store.frames.values().flat_map(|e| &e.faces) {
        let plane = f.masks["xseg"].plane().unwrap();
        assert_eq!(plane.width, 128);
    }
    assert_eq!(remove_labels(&faceset).unwrap(), 4);
    let e = train_xseg(&req(80), |_, _| true).unwrap_err();
    assert!(e.contains("no labelled faces"), "{e}");
}

/// `faceswapd xseg train` runs as a daemon job (queued, followed, checkpointed).
#[test]
fn xseg_training_is_a_daemon_job() {
    let root = tempfile::tempdir().unwrap();
    let faceset = labelled_pair(root.path(), false);
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = faceswap_tests::DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let model = root.path().join("xseg");
    let out = d
        .cli(&[
            "xseg",
            "train",
            &faceset.display().to_string(),
            "--model",
            &model.display().to_string(),
            "--resolution",
            "32",
            "--base",
            "8",
            "--steps",
            "10",
            "--batch",
            "2",
            "--save-every",
            "5",
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert!(text.contains("done"), "{text}");
    assert!(model.join("checkpoint.fsppm").is_file());
    let jobs = d.cli(&["jobs", "list"]).unwrap();
    assert!(String::from_utf8_lossy(&jobs.stdout).contains("xseg-train"));
    // Applying the model is a daemon job too.
    let text = d
        .cli_job(
            &[
                "xseg",
                "apply",
                &faceset.display().to_string(),
                "--model",
                &model.display().to_string(),
            ],
            "xseg-apply",
        )
        .unwrap();
    assert!(text.contains("stored an xseg mask for 2 faces"), "{text}");
    let store = faceswapd::faceset::store::Alignments::load(
        &faceset.join(faceswapd::faceset::ALIGNMENTS_FILE),
    )
    .unwrap();
    assert!(
        store
            .frames
            .values()
            .flat_map(|e| &e.faces)
            .all(|f| f.masks.contains_key("xseg"))
    );
}

/// The XSeg train job, SIGKILLed with its daemon at random moments (some during a checkpoint
/// write), resumes each time from a valid checkpoint and ends bit-identical to a run that was
/// never interrupted.
#[cfg(unix)]
#[test]
fn xseg_job_survives_sigkills_and_ends_with_the_uninterrupted_weights() {
    use std::time::Duration;

    use faceswap_models::ComputeDevice;
    use faceswap_protocol::{JobSpec, JobState, Request, Response, XsegSettings};
    use faceswap_tests::{
        DaemonUnderTest, job, kill_during_training, wait_for_temp_file, wait_running_past,
        wait_state,
    };
    use faceswapd::checkpoint;
    use faceswapd::masks::xseg::{XsegTrainRequest, train_xseg};

    let root = tempfile::tempdir().unwrap();
    let faceset = labelled_pair(root.path(), true);
    let settings = XsegSettings {
        resolution: 32,
        base: 8,
        steps: 90,
        batch: 2,
        lr: 1e-3,
        save_every: 1,
        device: None,
    };
    // The uninterrupted run, in this process (the job's seed is 0).
    let reference = root.path().join("reference");
    train_xseg(
        &XsegTrainRequest {
            facesets: vec![faceset.clone()],
            model_dir: reference.clone(),
            resolution: settings.resolution,
            base: settings.base,
            steps: settings.steps,
            batch: settings.batch as usize,
            lr: settings.lr,
            seed: 0,
            save_every: settings.save_every,
            device: ComputeDevice::CPU,
        },
        |_, _| true,
    )
    .unwrap();

    let model = root.path().join("xseg");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let mut d = DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let mut c = d.connect().unwrap();
    let spec = JobSpec::XsegTrain(faceswap_protocol::XsegTrainJob {
        facesets: vec![faceset.display().to_string()],
        model_dir: model.display().to_string(),
        settings: settings.clone(),
    });
    let Response::JobSubmitted { id } = c.call(&Request::SubmitJob { spec }).unwrap() else {
        panic!("not submitted");
    };
    let mut rng = Rng(0x5eed);
    let (mut kills, mut mid_write, mut last_step) = (0, 0, 0u64);
    while kills < 6 {
        let target = last_step + 1 + (rng.next() * 6.0) as u64;
        wait_running_past(&mut c, id, target).unwrap();
        if kills % 2 == 1 {
            // The instant a checkpoint is being written.
            wait_for_temp_file(&model, Duration::from_secs(5)).unwrap();
        }
        let (during_write, conn) = kill_during_training(&mut d, &model, &mut last_step).unwrap();
        kills += 1;
        mid_write += usize::from(during_write);
        c = conn;
        let r = job(&mut c, id).unwrap();
        assert_eq!(r.state, JobState::Interrupted, "{r:?}");
        c.call(&Request::ResumeJob { id }).unwrap();
    }
    println!("{kills} kills, {mid_write} during a checkpoint write, last step seen {last_step}");
    assert!(mid_write >= 1, "no kill landed during a checkpoint write");
    let done = wait_state(&mut c, id, JobState::Done, Duration::from_secs(300)).unwrap();
    assert_eq!(done.resumes, 6);
    let (resumed, _) = checkpoint::load_latest(&model).unwrap();
    let (straight, _) = checkpoint::load_latest(&reference).unwrap();
    let (resumed, straight) = (resumed.unwrap(), straight.unwrap());
    assert_eq!((resumed.step, straight.step), (90, 90));
    let values = |ck: faceswapd::checkpoint::Checkpoint| {
        use faceswap_models::burn::tensor::Device;
        use faceswap_models::xseg::{XSegOptions, XSegTrainer};
        let device = Device::flex().autodiff();
        let opts = XSegOptions {
            resolution: 32,
            base: 8,
        };
        let mut t = XSegTrainer::new(&opts, &device, 1e-3, 0);
        t.restore_state(ck.model, ck.optimizer, ck.step).unwrap();
        faceswap_models::weights::weight_values(t.model())
    };
    let (w1, w2) = (values(resumed), values(straight));
    let differing = w1
        .iter()
        .zip(&w2)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    println!("{} weights compared, {differing} differ", w1.len());
    assert!(w1.len() == w2.len() && differing == 0);
}
