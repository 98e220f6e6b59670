//! README's extract → train steps through the real `faceswapd` binary: each command queues its
//! daemon job, follows it to the end and leaves what the next step reads.

use std::path::PathBuf;

use faceswap_tests::{DaemonUnderTest, copy_fixtures, share_extractor_models};

#[test]
fn extract_then_train_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let photos = root.path().join("photos");
    copy_fixtures(
        &photos,
        &[
            "grace_hopper.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
    )
    .unwrap();
    let daemon = root.path().join("daemon");
    share_extractor_models(&daemon).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = DaemonUnderTest::start(&bin, &daemon).unwrap();
    let faceset = root.path().join("faceset");
    let fs = faceset.display().to_string();
    let text = d
        .cli_job(
            &[
                "extract",
                &photos.display().to_string(),
                "--out",
                &fs,
                "--size",
                "64",
                "--centering",
                "f",
            ],
            "extract",
        )
        .unwrap();
    println!("{text}");
    let faces = std::fs::read_dir(faceset.join("faces")).unwrap().count();
    assert_eq!(faces, 4, "Hopper and the three faces of the group photo");

    let model = root.path().join("model");
    let text = d
        .cli_job(
            &[
                "train",
                "--a",
                &fs,
                "--b",
                &fs,
                "--model",
                &model.display().to_string(),
                "--resolution",
                "32",
                "--ae-dims",
                "32",
                "--e-dims",
                "8",
                "--d-dims",
                "8",
                "--d-mask-dims",
                "8",
                "--batch",
                "2",
                "--steps",
                "3",
            ],
            "train",
        )
        .unwrap();
    println!("{text}");
    assert!(model.join("model.toml").is_file() && model.join("checkpoint.fsppm").is_file());
    let toml = std::fs::read_to_string(model.join("model.toml")).unwrap();
    assert!(toml.contains("centering = \"f\""), "{toml}");
}
