//! Landmark masks on the fixture faces, with landmarks from the real extractor.

use faceswap_tests::test_asset;
use faceswapd::extract::pipeline::{Extractor, StageTimings};
use faceswapd::faceset::face::ExtractSettings;
use faceswapd::geometry::{Centering, crop_matrix, legacy_matrix};
use faceswapd::masks::{LandmarkMask, landmark_mask};
use faceswapd::paths::Dirs;
use faceswapd::sampling::{Pyramid, load_image};
use faceswapd::warp::convex_hull;

/// Even–odd scanline fill at pixel centres, written here independently of the mask code.
fn rasterise(poly: &[[f64; 2]], size: usize) -> Vec<bool> {
    let mut out = vec![false; size * size];
    for y in 0..size {
        let cy = y as f64 + 0.5;
        let mut xs: Vec<f64> = (0..poly.len())
            .filter_map(|i| {
                let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
                ((a[1] <= cy) != (b[1] <= cy))
                    .then(|| a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]))
            })
            .collect();
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks(2) {
            if let [x0, x1] = pair {
                for x in 0..size {
                    let cx = x as f64 + 0.5;
                    out[y * size + x] |= cx >= *x0 && cx <= *x1;
                }
            }
        }
    }
    out
}

#[test]
fn landmark_masks_on_the_fixture_faces() {
    let dirs = Dirs::resolve().unwrap();
    let models = faceswapd::extract::default_models(&dirs).unwrap();
    let mut ex = Extractor::load(&models, ExtractSettings::default()).unwrap();
    let size = 256;
    let mut checked = 0;
    for name in [
        "grace_hopper.jpg",
        "eileen_collins_astronaut.png",
        "luis_pedro_coelho_mahotas.jpg",
        "vladmandic_faceapi_sample3_multiface.jpg",
    ] {
        let img = load_image(&test_asset(name).unwrap()).unwrap();
        for face in ex
            .process(&Pyramid::new(img), &mut StageTimings::default())
            .unwrap()
        {
            let lm = face.landmarks68();
            // In the faceswap "head" crop, where the forehead is in view.
            let m = crop_matrix(&legacy_matrix(&lm), size as u32, Centering::Head);
            let local = lm.map(|p| m.apply(p));
            let hull = landmark_mask(LandmarkMask::Hull, &local, size);
            let ours: Vec<bool> = hull.data.iter().map(|v| *v > 0.5).collect();
            let theirs = rasterise(&convex_hull(&local), size);
            let inter = ours.iter().zip(&theirs).filter(|(a, b)| **a && **b).count();
            let union = ours.iter().zip(&theirs).filter(|(a, b)| **a || **b).count();
            let iou = inter as f64 / union.max(1) as f64;
            let brows = local[17..27].iter().map(|p| p[1]).fold(f64::MAX, f64::min);
            let extended = landmark_mask(LandmarkMask::Extended, &local, size);
            let top = (0..size)
                .find(|y| (0..size).any(|x| extended.data[y * size + x] > 0.5))
                .unwrap();
            println!(
                "{name}: hull IoU {iou:.4}; brows at y {brows:.1}, extended mask from row {top}"
            );
            assert!(iou >= 0.99, "{name}: IoU {iou}");
            assert!(
                (top as f64) < brows - 3.0,
                "{name}: extended must reach above the brows"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn masks_are_generated_into_the_alignments_and_reviewed_as_a_sheet() {
    let root = tempfile::tempdir().unwrap();
    let faceset = faceswap_tests::faceset_from_photos(
        root.path(),
        &[
            "grace_hopper.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
        96,
    )
    .unwrap();
    let kinds = [LandmarkMask::Components, LandmarkMask::Extended];
    let n = faceswapd::masks::generate_landmark_masks(&faceset, &kinds).unwrap();
    assert_eq!(n, 4);
    let store = faceswapd::faceset::store::Alignments::load(
        &faceset.join(faceswapd::faceset::ALIGNMENTS_FILE),
    )
    .unwrap();
    for f in store.frames.values().flat_map(|e| &e.faces) {
        assert!(f.masks.contains_key("components") && f.masks.contains_key("extended"));
    }
    // Frame 0 (Hopper) by the first rule, the 3-face frame by the fallback.
    let rules =
        faceswapd::masks::rules::MaskRules::parse("0: extended; fallback: components").unwrap();
    let sheet = root.path().join("review.png");
    let shown = faceswapd::masks::review_grid(&faceset, &rules, &sheet, 64).unwrap();
    assert_eq!(shown, 4);
    let img = image::open(&sheet).unwrap();
    println!("review sheet {}×{}", img.width(), img.height());
    assert_eq!((img.width(), img.height()), (4 * 128, 128));

    // Training resolves the same rules: each face trains with the stored mask the rules pick,
    // projected into its crop.
    use faceswapd::train::faceset::load_faceset;
    let set = load_faceset(&faceset, 64, Some(&rules)).unwrap();
    let counts = set.mask_counts();
    println!("training masks by rule: {counts:?}");
    assert_eq!(counts.get("extended"), Some(&1));
    assert_eq!(counts.get("components"), Some(&3));
    for face in &set.faces {
        let (name, plane) = face.mask.as_ref().unwrap();
        let meta = faceswapd::faceset::read_face_meta(&face.file).unwrap();
        let stored = store
            .frames
            .get(&meta.frame)
            .and_then(|e| e.faces.get(meta.face_index as usize))
            .unwrap();
        let want = stored.masks[name].project(&meta.crop_at(64), 64).unwrap();
        assert_eq!(plane, &want.data, "{}", face.file.display());
        // The extended mask reaches the forehead: more area than the landmark hull.
        if name == "extended" {
            let hull = faceswapd::warp::fill_convex(&convex_hull(&face.landmarks), 64);
            let area = |m: &[f32]| m.iter().filter(|v| **v > 0.5).count();
            let top = |m: &[f32]| m.iter().position(|v| *v > 0.5).unwrap_or(0) / 64;
            println!(
                "extended {} px from row {} vs hull {} px from row {}",
                area(plane),
                top(plane),
                area(&hull),
                top(&hull)
            );
            assert!(area(plane) > area(&hull) && top(plane) + 2 <= top(&hull));
        }
    }
    // A two-step training run with the rules reports which masks it used.
    let model = root.path().join("model");
    let req = faceswapd::train::TrainRequest {
        faceset_a: faceset.clone(),
        faceset_b: faceset.clone(),
        model_dir: model,
        settings: faceswap_protocol::TrainSettings {
            resolution: 32,
            ae_dims: 16,
            e_dims: 8,
            d_dims: 8,
            d_mask_dims: 4,
            batch: 2,
            steps: 2,
            preview_every: 100,
            mask_rules: Some("0: extended; fallback: components".into()),
            ..faceswap_protocol::TrainSettings::default()
        },
        device: faceswap_models::ComputeDevice::CPU,
        replicas: Vec::new(),
    };
    let summary = faceswapd::train::run_training(&req, |_| true).unwrap();
    println!("{:?}", summary.notes);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("components 3, extended 1; landmark hull 0")),
        "{:?}",
        summary.notes
    );
    // Rules without an alignments store to read masks from: a clear error.
    let loose = root.path().join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    for e in std::fs::read_dir(faceset.join("faces")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, loose.join(p.file_name().unwrap())).unwrap();
    }
    let err = load_faceset(&loose, 64, Some(&rules))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no alignments.fsppa") && err.contains("--mask-rules"),
        "{err}"
    );
}

/// A BiSeNet-FP stand-in: input `[1, 3, 512, 512]`, logits `[1, C, 512, 512]` fixed so the
/// arg-max is class 1 ("skin") in a central disc and the hair class in a ring around it.
const BUILD_BISENET: &str = r#"
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
classes, hair, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
y, x = np.mgrid[0:512, 0:512]
r = np.hypot(x - 255.5, y - 255.5)
logits = np.zeros((1, classes, 512, 512), np.float32)
logits[0, 0] = 1.0
logits[0, 1][r < 150] = 2.0
if hair < classes:
    logits[0, hair][(r >= 150) & (r < 200)] = 2.0
nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=1),
         helper.make_node("Mul", ["m", "zero"], ["z"]),
         helper.make_node("Add", ["z", "value"], ["logits"])]
inits = [numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "zero"),
         numpy_helper.from_array(logits, "value")]
graph = helper.make_graph(nodes, "bisenet_fp",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, 512, 512])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, out)
"#;

#[test]
fn bisenet_fp_masks_from_an_onnx_model_of_the_same_signature() {
    use faceswap_models::bisenet::BiSeNetParts;
    let root = tempfile::tempdir().unwrap();
    let photos = root.path().join("photos");
    faceswap_tests::copy_fixtures(&photos, &["grace_hopper.jpg"]).unwrap();
    let faceset = root.path().join("faces");
    faceswap_tests::extract_faceset(&photos, &faceset, 128).unwrap();
    let python = faceswap_tests::converter_python().unwrap();
    let build = |classes: u32, hair: u32, name: &str| {
        let out = root.path().join(name);
        let ok = std::process::Command::new(&python)
            .arg("-c")
            .arg(BUILD_BISENET)
            .args([classes.to_string(), hair.to_string()])
            .arg(&out)
            .status()
            .unwrap()
            .success();
        assert!(ok, "building {name}");
        out
    };
    let runtime = faceswapd::extract::default_models(&Dirs::resolve().unwrap())
        .unwrap()
        .runtime;
    let store_file = faceset.join(faceswapd::faceset::ALIGNMENTS_FILE);
    // Centre, ring and corner of the 128 px aligned crop, through the stored mask.
    let probe = |name: &str| {
        let store = faceswapd::faceset::store::Alignments::load(&store_file).unwrap();
        let f = &store.frames[&0].faces[0];
        let meta =
            faceswapd::faceset::read_face_meta(&faceset.join(f.file.as_ref().unwrap())).unwrap();
        let m = f.masks[name].project(&meta.crop, 128).unwrap();
        let at = |x: usize, y: usize| m.data[y * 128 + x];
        // Ring radius 150–200 of 512 → 37.5–50 of 128; sample at 44 px right of centre.
        (at(64, 64), at(64 + 44, 64), at(2, 2))
    };
    for (classes, hair) in [(5u32, 3u32), (19, 17)] {
        let model = build(classes, hair, &format!("bisenet_{classes}.onnx"));
        let n = faceswapd::masks::generate_bisenet_masks(
            &faceset,
            &runtime,
            &model,
            BiSeNetParts::default(),
        )
        .unwrap();
        assert_eq!(n, 1);
        let (centre, ring, corner) = probe("bisenet-fp_face");
        println!("{classes} classes, face: centre {centre:.2}, ring {ring:.2}, corner {corner:.2}");
        assert!(centre > 0.99 && ring < 0.01 && corner < 0.01);
        let parts = BiSeNetParts {
            hair: true,
            ..BiSeNetParts::default()
        };
        faceswapd::masks::generate_bisenet_masks(&faceset, &runtime, &model, parts).unwrap();
        let (centre, ring, _) = probe("bisenet-fp_head");
        println!("{classes} classes, head: centre {centre:.2}, ring {ring:.2}");
        assert!(centre > 0.99 && ring > 0.99);
    }
    // A model with another output is refused with a message naming the expected shape.
    let wrong = build(7, 9, "wrong.onnx");
    let e = faceswapd::masks::generate_bisenet_masks(
        &faceset,
        &runtime,
        &wrong,
        BiSeNetParts::default(),
    )
    .unwrap_err();
    println!("wrong model: {e}");
    assert!(e.contains("5 or 19"), "{e}");
}

/// `faceswapd mask generate` runs in a daemon job (landmark masks, and the BiSeNet-FP model
/// named on the command line); `mask review` draws what it stored.
#[test]
fn the_cli_generates_masks_in_a_daemon_job_and_reviews_them() {
    let root = tempfile::tempdir().unwrap();
    let photos = root.path().join("photos");
    faceswap_tests::copy_fixtures(&photos, &["grace_hopper.jpg"]).unwrap();
    let faceset = root.path().join("faces");
    faceswap_tests::extract_faceset(&photos, &faceset, 128).unwrap();
    let model = root.path().join("bisenet.onnx");
    let python = faceswap_tests::converter_python().unwrap();
    let ok = std::process::Command::new(&python)
        .arg("-c")
        .arg(BUILD_BISENET)
        .args(["19", "17"])
        .arg(&model)
        .status()
        .unwrap()
        .success();
    assert!(ok, "building the model");
    let daemon = root.path().join("daemon");
    faceswap_tests::share_extractor_models(&daemon).unwrap();
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = faceswap_tests::DaemonUnderTest::start(&bin, &daemon).unwrap();
    let fs = faceset.display().to_string();
    let text = d
        .cli_job(
            &[
                "mask",
                "generate",
                &fs,
                "--kinds",
                "hull",
                "--bisenet",
                &model.display().to_string(),
                "--hair",
            ],
            "mask-generate",
        )
        .unwrap();
    println!("{text}");
    assert!(
        text.contains("added hull to 1 faces") && text.contains("BiSeNet-FP"),
        "{text}"
    );
    let store = faceswapd::faceset::store::Alignments::load(
        &faceset.join(faceswapd::faceset::ALIGNMENTS_FILE),
    )
    .unwrap();
    let masks = &store.frames[&0].faces[0].masks;
    assert!(
        masks.contains_key("hull") && masks.contains_key("bisenet-fp_head"),
        "{:?}",
        masks.keys()
    );
    let sheet = root.path().join("sheet.png");
    let out = d
        .cli(&[
            "mask",
            "review",
            &fs,
            "--rules",
            "fallback: bisenet-fp_head",
            "--out",
            &sheet.display().to_string(),
        ])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(image::open(&sheet).is_ok());
}
