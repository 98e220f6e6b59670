//! Training end to end: facesets extracted from the real fixtures, a real SAEHD model on the
//! CPU, checkpoints, previews, the loss log, and SIGKILLs of a real daemon mid-training.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use faceswap_models::burn::tensor::Device;
use faceswap_models::{ComputeDevice, FaceTrainer, TrainerConfig};
use faceswap_protocol::{
    JobSpec, JobState, OptimizerKind, Precision, Request, Response, TrainSettings,
};
use faceswap_tests::{
    DaemonUnderTest, job, kill_during_training, test_asset, wait_for_temp_file, wait_running_past,
    wait_state,
};
use faceswapd::checkpoint::{self, Checkpoint};
use faceswapd::extract::{ExtractRequest, run_extraction};
use faceswapd::faceset::face::ExtractSettings;
use faceswapd::geometry::Centering;
use faceswapd::paths::Dirs;
use faceswapd::train::{LOSS_LOG, PREVIEW, TrainRequest, run_training};

/// Two facesets at 64 px, made once per test binary: A from the four fixture photos (6 faces),
/// B from every 6th frame of the Pexels clip.
fn facesets() -> &'static (PathBuf, PathBuf) {
    static SETS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    SETS.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("training-facesets");
        let _ = std::fs::remove_dir_all(&root);
        let photos = root.join("photos");
        std::fs::create_dir_all(&photos).unwrap();
        for name in [
            "grace_hopper.jpg",
            "eileen_collins_astronaut.png",
            "luis_pedro_coelho_mahotas.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ] {
            std::fs::copy(test_asset(name).unwrap(), photos.join(name)).unwrap();
        }
        let dirs = Dirs::resolve().unwrap();
        let models = faceswapd::extract::default_models(&dirs)
            .expect("converted models are cached (run installers/test.sh)");
        let extract = |input: PathBuf, output: PathBuf, every_nth: u32| {
            let req = ExtractRequest {
                input,
                output,
                size: 64,
                centering: Centering::DflFull,
                every_nth,
                settings: ExtractSettings::default(),
                smoothing: Some(Default::default()),
            };
            run_extraction(&req, &models, |_, _| true).unwrap();
        };
        extract(photos, root.join("a"), 1);
        extract(
            test_asset("WolfgangLanger_Pexels.mp4").unwrap(),
            root.join("b"),
            6,
        );
        (root.join("a"), root.join("b"))
    })
}

fn count_faces(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("faces")).map_or(0, |d| d.count())
}

/// A small DF model that still learns faces in a few hundred CPU steps.
fn small_settings(steps: u64) -> TrainSettings {
    TrainSettings {
        archi: "df".into(),
        resolution: 64,
        ae_dims: 64,
        e_dims: 8,
        d_dims: 8,
        d_mask_dims: 4,
        // Above 4: burn-flex computes weight gradients of micro-batches of ≤ 4 on a slow path.
        batch: 6,
        steps,
        seed: 11,
        optimizer: OptimizerKind::AdaBelief,
        lr: 5e-4,
        warmup: 20,
        save_every: 100,
        preview_every: 100,
        backup_every: 150,
        keep_backups: 1,
        ..TrainSettings::default()
    }
}

#[test]
fn training_on_fixture_facesets_halves_the_loss_and_writes_previews_and_the_log() {
    let (a, b) = facesets();
    println!(
        "faceset A: {} faces, B: {} faces",
        count_faces(a),
        count_faces(b)
    );
    assert!(count_faces(a) >= 5 && count_faces(b) >= 20);
    let model = tempfile::tempdir().unwrap();
    let req = TrainRequest {
        faceset_a: a.clone(),
        faceset_b: b.clone(),
        model_dir: model.path().to_path_buf(),
        settings: small_settings(300),
        device: ComputeDevice::CPU,
        replicas: Vec::new(),
    };
    let start = Instant::now();
    let summary = run_training(&req, |_| true).unwrap();
    for line in summary.report() {
        println!("{line}");
    }
    println!("300 steps in {:.1} s", start.elapsed().as_secs_f64());
    assert_eq!(summary.end_step, 300);
    let ratio = summary.last_loss / summary.first_loss;
    println!("loss ratio last/first = {ratio:.3}");
    assert!(ratio <= 0.5, "loss fell only to {ratio:.3} of its start");

    let log = std::fs::read_to_string(model.path().join(LOSS_LOG)).unwrap();
    assert_eq!(log.lines().count(), 301, "header + one row per step");
    for step in [100, 200, 300] {
        let p = model
            .path()
            .join("previews")
            .join(format!("step_{step:08}.png"));
        let img = image::open(&p).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (6 * 64, 4 * 64),
            "{}",
            p.display()
        );
    }
    assert!(model.path().join(PREVIEW).is_file());
    let backups: Vec<_> = std::fs::read_dir(model.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(backups, ["step_00000300.fsppm"], "every 150 steps, keep 1");
    let (ck, _) = checkpoint::load_latest(model.path()).unwrap();
    assert_eq!(ck.unwrap().step, 300);

    // Running again with a higher target continues from the checkpoint.
    let more = TrainRequest {
        settings: small_settings(310),
        ..req
    };
    let again = run_training(&more, |_| true).unwrap();
    assert_eq!((again.start_step, again.end_step), (300, 310));
}

/// The weights stored in a checkpoint, as values (records carry per-build parameter ids).
fn weights_of(ck: Checkpoint, settings: &TrainSettings) -> Vec<f32> {
    let opts = faceswapd::train::network_options(settings).unwrap();
    let mut t = FaceTrainer::new(&opts, &Device::flex().autodiff(), TrainerConfig::default());
    t.restore_state(ck.model, ck.optimizer, ck.step).unwrap();
    t.weight_values()
}

#[cfg(unix)]
#[test]
fn sigkill_twenty_times_mid_training_then_resume_ends_with_the_uninterrupted_weights() {
    let (a, b) = facesets();
    // Tiny and checkpointing every step, so kills land during checkpoint writes too.
    let settings = TrainSettings {
        resolution: 32,
        ae_dims: 32,
        e_dims: 8,
        d_dims: 8,
        d_mask_dims: 4,
        batch: 2,
        micro_batches: 2,
        lr_dropout: true,
        clip_norm: 1.0,
        eyes_mouth_prio: true,
        flip_a: true,
        hsv_power: 0.1,
        save_every: 1,
        preview_every: 0,
        ..small_settings(160)
    };

    // The uninterrupted run, in this process.
    let reference = tempfile::tempdir().unwrap();
    run_training(
        &TrainRequest {
            faceset_a: a.clone(),
            faceset_b: b.clone(),
            model_dir: reference.path().to_path_buf(),
            settings: settings.clone(),
            device: ComputeDevice::CPU,
            replicas: Vec::new(),
        },
        |_| true,
    )
    .unwrap();

    // The same run as a daemon job, killed 20 times.
    let root = tempfile::tempdir().unwrap();
    let model_dir = root.path().join("model");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let mut d = DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let mut c = d.connect().unwrap();
    let spec = JobSpec::Train(faceswap_protocol::TrainJob {
        faceset_a: a.display().to_string(),
        faceset_b: b.display().to_string(),
        model_dir: model_dir.display().to_string(),
        settings: Box::new(settings.clone()),
    });
    let Response::JobSubmitted { id } = c.call(&Request::SubmitJob { spec }).unwrap() else {
        panic!("not submitted");
    };
    let mut rng = 0x5eed_u64;
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let (mut kills, mut mid_write, mut last_step) = (0, 0, 0u64);
    while kills < 20 {
        // Wait until training is under way, then kill at a random moment — or, every third
        // time, the instant a checkpoint temp file appears.
        let record = job(&mut c, id).unwrap();
        if record.state == JobState::Done {
            break;
        }
        let target = last_step + 1 + next(8);
        wait_running_past(&mut c, id, target).unwrap();
        if kills % 3 == 2 {
            wait_for_temp_file(&model_dir, Duration::from_secs(5)).unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(next(300)));
        }
        // A valid checkpoint is always there, never behind the last one seen.
        let (during_write, conn) =
            kill_during_training(&mut d, &model_dir, &mut last_step).unwrap();
        kills += 1;
        mid_write += usize::from(during_write);
        c = conn;
        let r = job(&mut c, id).unwrap();
        if r.state == JobState::Done {
            break;
        }
        assert_eq!(r.state, JobState::Interrupted, "{r:?}");
        c.call(&Request::ResumeJob { id }).unwrap();
    }
    println!(
        "{kills} kills, {mid_write} of them during a checkpoint write, last step seen {last_step}"
    );
    assert_eq!(
        kills, 20,
        "the job finished before 20 kills; give it more steps"
    );
    assert!(mid_write >= 1, "no kill landed during a checkpoint write");
    let done = wait_state(&mut c, id, JobState::Done, Duration::from_secs(600)).unwrap();
    assert_eq!(done.resumes, 20);

    let (resumed, _) = checkpoint::load_latest(&model_dir).unwrap();
    let (straight, _) = checkpoint::load_latest(reference.path()).unwrap();
    let (resumed, straight) = (resumed.unwrap(), straight.unwrap());
    assert_eq!((resumed.step, straight.step), (160, 160));
    let (w1, w2) = (
        weights_of(resumed, &settings),
        weights_of(straight, &settings),
    );
    let differing = w1
        .iter()
        .zip(&w2)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    println!("{} weights compared, {differing} differ", w1.len());
    assert!(w1.len() == w2.len() && differing == 0);
    let log = std::fs::read_to_string(model_dir.join(LOSS_LOG)).unwrap();
    assert_eq!(log.lines().count(), 161, "one row per step, none twice");
}

/// Pretraining on one faceset, then a new model that takes only the pretrained encoder and
/// keeps it frozen for two steps (through the daemon's training run, as `faceswapd train
/// --pretrained … --freeze-steps 2` does).
#[test]
fn pretrain_then_load_the_encoder_frozen_for_two_steps() {
    use faceswap_models::saehd::ModelPart;
    let (_, b) = facesets();
    let settings = |steps| TrainSettings {
        resolution: 32,
        ae_dims: 32,
        e_dims: 8,
        d_dims: 8,
        d_mask_dims: 4,
        batch: 2,
        save_every: 1,
        preview_every: 0,
        ..small_settings(steps)
    };
    let root = tempfile::tempdir().unwrap();
    let pre_dir = root.path().join("pretrained");
    let run = |model: &Path, s: TrainSettings| {
        run_training(
            &TrainRequest {
                faceset_a: b.clone(),
                faceset_b: b.clone(),
                model_dir: model.to_path_buf(),
                settings: s,
                device: ComputeDevice::CPU,
                replicas: Vec::new(),
            },
            |_| true,
        )
        .unwrap()
    };
    run(
        &pre_dir,
        TrainSettings {
            pretrain: true,
            ..settings(3)
        },
    );
    let encoder = |dir: &Path| {
        let (ck, _) = checkpoint::load_latest(dir).unwrap();
        let ck = ck.unwrap();
        let opts = faceswapd::train::network_options(&settings(1)).unwrap();
        let mut t = FaceTrainer::new(&opts, &Device::flex().autodiff(), TrainerConfig::default());
        t.restore_state(ck.model, ck.optimizer, ck.step).unwrap();
        t.model()
            .part_values(ModelPart::Encoder)
            .into_iter()
            .map(f32::to_bits)
            .collect::<Vec<_>>()
    };
    let pretrained = encoder(&pre_dir);
    let model = root.path().join("model");
    let tuned = |steps| TrainSettings {
        seed: 99,
        pretrained: Some(pre_dir.display().to_string()),
        freeze_steps: 2,
        ..settings(steps)
    };
    let summary = run(&model, tuned(2));
    println!("{:?}", summary.notes);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("took [Encoder]") && n.contains("frozen for 2 steps"))
    );
    assert_eq!(
        encoder(&model),
        pretrained,
        "frozen for the first two steps"
    );
    run(&model, tuned(4));
    assert_ne!(encoder(&model), pretrained, "trained after them");
    // A pretrained model of another architecture is refused.
    let other = root.path().join("other");
    let e = run_training(
        &TrainRequest {
            faceset_a: b.clone(),
            faceset_b: b.clone(),
            model_dir: other,
            settings: TrainSettings {
                e_dims: 16,
                ..tuned(1)
            },
            device: ComputeDevice::CPU,
            replicas: Vec::new(),
        },
        |_| true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("equal architectures"), "{e}");
}

/// A Phaze-A model from a preset file (small widths, G-block, an fc per side, one decoder)
/// trains on the fixture facesets through the daemon's training job, records its options in
/// model.toml, resumes, refuses another architecture in its folder, and serves merge.
#[test]
fn phaze_a_preset_file_trains_resumes_and_swaps() {
    use faceswapd::merge::FacePredictor;
    use faceswapd::merge::convert::ModelPredictor;
    use faceswapd::train::{MODEL_FILE, ModelFile};

    let (a, b) = facesets();
    let dir = tempfile::tempdir().unwrap();
    let preset = dir.path().join("small-gblock.toml");
    std::fs::write(
        &preset,
        "# A small IAE-style model with a G-block, for tests.\n\
         output_size = 64\nenc_scaling = 7\nfs_original_min_filters = 16\n\
         fs_original_max_filters = 64\nbottleneck_size = 128\nfc_min_filters = 64\n\
         fc_max_filters = 64\nfc_upsample_filters = 64\nfc_gblock_min_nodes = 64\n\
         fc_gblock_max_nodes = 64\ndec_max_filters = 64\ndec_min_filters = 16\n",
    )
    .unwrap();
    let model = dir.path().join("model");
    let settings = |steps| TrainSettings {
        archi: format!("phaze-a:{}", preset.display()),
        resolution: 0,
        optimizer: OptimizerKind::Adam,
        ..small_settings(steps)
    };
    let req = TrainRequest {
        faceset_a: a.clone(),
        faceset_b: b.clone(),
        model_dir: model.clone(),
        settings: settings(150),
        device: ComputeDevice::CPU,
        replicas: Vec::new(),
    };
    let summary = run_training(&req, |_| true).unwrap();
    for line in summary.report() {
        println!("{line}");
    }
    let ratio = summary.last_loss / summary.first_loss;
    println!("Phaze-A loss ratio last/first = {ratio:.3}");
    assert!(ratio <= 0.7, "loss fell only to {ratio:.3} of its start");

    let file: ModelFile =
        toml::from_str(&std::fs::read_to_string(model.join(MODEL_FILE)).unwrap()).unwrap();
    let opts = file
        .phaze_a
        .clone()
        .expect("model.toml keeps the Phaze-A options");
    assert_eq!(
        (file.resolution, opts.output_size, opts.bottleneck_size),
        (64, 64, 128)
    );
    assert!(opts.enable_gblock && opts.split_fc);

    // Later edits to the preset file do not change the model: it resumes from model.toml…
    let again = run_training(
        &TrainRequest {
            settings: TrainSettings {
                archi: "phaze-a:iae".into(),
                ..settings(160)
            },
            ..req.clone()
        },
        |_| true,
    );
    let err = again.unwrap_err().to_string();
    assert!(err.contains("was created as"), "{err}");
    std::fs::write(&preset, "output_size = 64\nbottleneck_size = 32\n").unwrap();
    let resumed = run_training(
        &TrainRequest {
            settings: settings(160),
            ..req.clone()
        },
        |_| true,
    )
    .unwrap();
    assert_eq!((resumed.start_step, resumed.end_step), (150, 160));
    let kept: ModelFile =
        toml::from_str(&std::fs::read_to_string(model.join(MODEL_FILE)).unwrap()).unwrap();
    assert_eq!(
        kept.phaze_a.unwrap().bottleneck_size,
        128,
        "the edited preset changed nothing"
    );

    // …and merge swaps faces with it.
    let mut predictor = ModelPredictor::open(&model, ComputeDevice::CPU).unwrap();
    assert_eq!(predictor.resolution(), 64);
    let face = vec![[0.5f32, 0.4, 0.3]; 64 * 64];
    let out = predictor.predict(&[face]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].face.len(), 64 * 64);
    assert!(
        out[0]
            .face
            .iter()
            .flatten()
            .all(|v| (0.0..=1.0).contains(v))
    );
}

/// `--precision bf16` through the training job: mixed precision learns like f32 on the
/// fixture facesets and the job reports its loss scale.
#[test]
fn mixed_precision_training_job_learns_and_reports_its_loss_scale() {
    let (a, b) = facesets();
    let mut finals = Vec::new();
    for precision in ["f32", "bf16"] {
        let dir = tempfile::tempdir().unwrap();
        let req = TrainRequest {
            faceset_a: a.clone(),
            faceset_b: b.clone(),
            model_dir: dir.path().to_path_buf(),
            settings: TrainSettings {
                precision: precision.parse().unwrap(),
                ..small_settings(60)
            },
            device: ComputeDevice::CPU,
            replicas: Vec::new(),
        };
        let summary = run_training(&req, |_| true).unwrap();
        println!("{precision}: {}", summary.report().join(" | "));
        assert!(
            summary.last_loss < 0.8 * summary.first_loss,
            "{precision} learns"
        );
        let noted = summary.notes.iter().any(|n| n.contains("loss scale"));
        assert_eq!(noted, precision != "f32", "{:?}", summary.notes);
        finals.push(summary.last_loss);
    }
    let gap = (finals[1] - finals[0]).abs() / finals[0];
    println!("bf16 vs f32 final loss gap {:.1}%", gap * 100.0);
    assert!(gap < 0.1, "bf16 {} vs f32 {}", finals[1], finals[0]);
    // An unknown precision never reaches a job: the typed option refuses it, naming the set.
    let bad = "f8".parse::<Precision>().unwrap_err().to_string();
    assert!(bad.contains("f32, f16, bf16"), "{bad}");
}

/// `faceswapd phaze-a-preset` lists the presets and prints one as a file `--archi
/// phaze-a:FILE` takes; an unknown name fails naming the presets.
#[test]
fn the_cli_prints_phaze_a_presets_to_edit() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    let list = run(&["phaze-a-preset"]);
    assert!(list.status.success());
    let names = String::from_utf8(list.stdout).unwrap();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["dfl-saehd-df", "dfl-saehd-liae", "iae", "fspp-256"]
    );
    let one = run(&["phaze-a-preset", "fspp-256"]);
    assert!(one.status.success());
    let text = String::from_utf8(one.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.toml");
    std::fs::write(&file, &text).unwrap();
    let opts = faceswapd::train::phaze_a_options(&format!("phaze-a:{}", file.display()), 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        opts,
        faceswap_models::PhazeAOptions::preset("fspp-256").unwrap()
    );
    let bad = run(&["phaze-a-preset", "nope"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fspp-256"));

    // A faceswap GUI preset (JSON) converts to ours, with notes as comments, and trains as is.
    let toml_text = std::fs::read_to_string(&file).unwrap();
    let as_json: serde_json::Value = toml::from_str::<serde_json::Value>(&toml_text).unwrap();
    let mut json = as_json.as_object().unwrap().clone();
    json.insert("__section".into(), "train|model|phaze_a".into());
    json.insert("enc_load_weights".into(), true.into());
    json.insert("load_layers".into(), "encoder".into());
    json.remove("enc_width");
    json.remove("enc_depth");
    let json_file = dir.path().join("faceswap.json");
    std::fs::write(&json_file, serde_json::Value::Object(json).to_string()).unwrap();
    let converted = run(&[
        "phaze-a-preset",
        "--from-faceswap",
        json_file.to_str().unwrap(),
    ]);
    assert!(converted.status.success(), "{converted:?}");
    let text = String::from_utf8(converted.stdout).unwrap();
    println!("{}", text.lines().take(4).collect::<Vec<_>>().join("\n"));
    assert!(text.contains("# note: enc_load_weights"));
    assert_eq!(
        faceswap_models::PhazeAOptions::from_toml(&text).unwrap(),
        opts
    );
    let direct = faceswapd::train::phaze_a_options(&format!("phaze-a:{}", json_file.display()), 0)
        .unwrap()
        .unwrap();
    assert_eq!(direct, opts);
}
