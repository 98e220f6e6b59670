//! XSeg learns: a small network trained for a few hundred CPU steps at 64 px on faces from the
//! fixtures — labels are their landmark hulls with random synthetic occluders cut out — reaches
//! IoU ≥ 0.85 on held-out faces with occluders of their own.

use std::path::Path;

use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::xseg::{XSegOptions, XSegTrainer};
use faceswap_tests::{copy_fixtures, extract_faceset, faceset_from_photos, test_asset};
use faceswapd::faceset::read_face_meta;
use faceswapd::masks::{LandmarkMask, landmark_mask};

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
    fn range(&mut self, a: f32, b: f32) -> f32 {
        a + (b - a) * self.next()
    }
}

/// A face: RGB planes `[3, R, R]` in [0, 1] and its hull mask `[R, R]`.
#[derive(Clone)]
struct Sample {
    rgb: Vec<f32>,
    mask: Vec<f32>,
}

fn load(dir: &Path) -> Vec<Sample> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("faces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let meta = read_face_meta(f).unwrap();
            let img = image::open(f).unwrap().to_rgb8();
            let img = image::imageops::resize(
                &img,
                R as u32,
                R as u32,
                image::imageops::FilterType::Triangle,
            );
            let k = R as f64 / meta.size as f64;
            let mut lm = [[0.0; 2]; 68];
            for (o, p) in lm.iter_mut().zip(&meta.landmarks) {
                let q = meta.crop.apply(*p);
                *o = [q[0] * k, q[1] * k];
            }
            let mut rgb = vec![0f32; 3 * R * R];
            for (i, p) in img.pixels().enumerate() {
                for c in 0..3 {
                    rgb[c * R * R + i] = p.0[c] as f32 / 255.0;
                }
            }
            Sample {
                rgb,
                mask: landmark_mask(LandmarkMask::Hull, &lm, R).data,
            }
        })
        .collect()
}

/// Pastes 0–2 random occluders (rectangles or ellipses of noisy colour) over the face and cuts
/// them out of the label; flips half the time.
fn occlude(s: &Sample, rng: &mut Rng) -> Sample {
    let mut out = s.clone();
    let shapes = (rng.next() * 3.0) as usize;
    for _ in 0..shapes {
        let (w, h) = (
            rng.range(0.15, 0.4) * R as f32,
            rng.range(0.15, 0.4) * R as f32,
        );
        let (cx, cy) = (
            rng.range(0.2, 0.8) * R as f32,
            rng.range(0.2, 0.8) * R as f32,
        );
        let ellipse = rng.next() < 0.5;
        let colour = [rng.next(), rng.next(), rng.next()];
        for y in 0..R {
            for x in 0..R {
                let (dx, dy) = ((x as f32 - cx) / (w / 2.0), (y as f32 - cy) / (h / 2.0));
                let inside = if ellipse {
                    dx * dx + dy * dy <= 1.0
                } else {
                    dx.abs() <= 1.0 && dy.abs() <= 1.0
                };
                if inside {
                    let noise = rng.range(-0.08, 0.08);
                    for (c, v) in colour.iter().enumerate() {
                        out.rgb[c * R * R + y * R + x] = (v + noise).clamp(0.0, 1.0);
                    }
                    out.mask[y * R + x] = 0.0;
                }
            }
        }
    }
    if rng.next() < 0.5 {
        for y in 0..R {
            for x in 0..R / 2 {
                let (a, b) = (y * R + x, y * R + R - 1 - x);
                out.mask.swap(a, b);
                for c in 0..3 {
                    out.rgb.swap(c * R * R + a, c * R * R + b);
                }
            }
        }
    }
    out
}

fn batch(samples: &[Sample], device: &Device) -> (Tensor<4>, Tensor<4>) {
    let n = samples.len();
    let rgb: Vec<f32> = samples.iter().flat_map(|s| s.rgb.iter().copied()).collect();
    let mask: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.mask.iter().copied())
        .collect();
    (
        Tensor::<4>::from_data(TensorData::new(rgb, [n, 3, R, R]), device),
        Tensor::<4>::from_data(TensorData::new(mask, [n, 1, R, R]), device),
    )
}

#[test]
fn xseg_learns_faces_with_occluders_and_generalises_to_held_out_faces() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xseg-faces");
    let _ = std::fs::remove_dir_all(&root);
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
    extract_faceset(&photos, &root.join("stills"), 64).unwrap();
    extract_faceset(
        &test_asset("WolfgangLanger_Pexels.mp4").unwrap(),
        &root.join("video"),
        64,
    )
    .unwrap();
    let stills = load(&root.join("stills"));
    let video = load(&root.join("video"));
    // Train: the six stills and 24 video frames from the first two thirds; held out: ten
    // frames from the last third.
    let mut train: Vec<Sample> = stills;
    train.extend(video.iter().take(310).step_by(13).cloned());
    let held_out: Vec<Sample> = video.iter().skip(330).step_by(14).cloned().collect();
    println!(
        "{} training faces, {} held out",
        train.len(),
        held_out.len()
    );
    assert!(train.len() >= 28 && held_out.len() >= 10);

    let device = Device::flex().autodiff();
    let opts = XSegOptions {
        resolution: R,
        base: 12,
    };
    let mut trainer = XSegTrainer::new(&opts, &device, 2e-3, 7);
    let mut rng = Rng(0x5eed);
    let steps = 300;
    let start = std::time::Instant::now();
    let mut losses = Vec::new();
    for step in 0..steps {
        let picked: Vec<Sample> = (0..8)
            .map(|_| {
                occlude(
                    &train[(rng.next() * train.len() as f32) as usize % train.len()],
                    &mut rng,
                )
            })
            .collect();
        let (x, y) = batch(&picked, &device);
        let loss = trainer.train_step(x, y);
        if step % 50 == 0 || step + 1 == steps {
            println!("step {step}: loss {loss:.4}");
        }
        losses.push(loss);
    }
    println!("{steps} steps in {:.1} s", start.elapsed().as_secs_f64());

    // Held-out faces with their own occluders.
    let mut eval_rng = Rng(0xe7a1);
    let (mut inter, mut union) = (0usize, 0usize);
    for s in &held_out {
        let o = occlude(s, &mut eval_rng);
        let (x, _) = batch(std::slice::from_ref(&o), &device);
        let pred = trainer
            .model()
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (p, t) in pred.iter().zip(&o.mask) {
            let (p, t) = (*p > 0.5, *t > 0.5);
            inter += (p && t) as usize;
            union += (p || t) as usize;
        }
    }
    let iou = inter as f64 / union.max(1) as f64;
    println!("held-out IoU {iou:.3}");
    assert!(iou >= 0.85, "IoU {iou}");
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
