//! A faceswap alignments file (.fsa), built by this test with faceswap's documented structure
//! (zlib-compressed pickle, `__meta__` + `__data__`, NumPy landmarks, zlib masks with their
//! matrices), imported with the photos it describes into a new, trainable faceset.

use faceswap_tests::{faceset_from_photos, run_converter_python};
use faceswapd::faceset::store::Alignments;
use faceswapd::faceset::{ALIGNMENTS_FILE, read_face_meta};
use faceswapd::geometry::Centering;
use faceswapd::import::{fsa::read_fsa, import_fsa};

/// Writes an .fsa from a JSON description of frames and faces.
const BUILD_FSA: &str = r#"
import json, pickle, sys, zlib
import numpy as np
spec = json.load(open(sys.argv[1]))
data = {}
for frame, faces in spec.items():
    out = []
    for f in faces:
        mask = np.array(f['mask'], np.uint8).tobytes()
        out.append({'x': f['x'], 'y': f['y'], 'w': f['w'], 'h': f['h'],
                    'landmarks_xy': np.array(f['landmarks'], np.float32),
                    'mask': {'components': {'mask': zlib.compress(mask),
                                            'affine_matrix': np.array(f['matrix'], np.float64),
                                            'interpolator': 2, 'stored_size': 128,
                                            'stored_centering': 'face'}},
                    'identity': {}, 'thumb': None})
    data[frame] = {'faces': out, 'video_meta': {}}
blob = {'__meta__': {'version': 2.4}, '__data__': data}
open(sys.argv[2], 'wb').write(zlib.compress(pickle.dumps(blob, protocol=4)))
"#;

#[test]
fn a_faceswap_alignments_file_becomes_a_trainable_faceset() {
    let root = tempfile::tempdir().unwrap();
    let names = [
        "grace_hopper.jpg",
        "vladmandic_faceapi_sample3_multiface.jpg",
    ];
    // Our own extraction stands in for faceswap's: its landmarks and a disc mask per face.
    let ours = faceset_from_photos(root.path(), &names, 64).unwrap();
    let store = Alignments::load(&ours.join(ALIGNMENTS_FILE)).unwrap();
    let disc: Vec<Vec<u8>> = (0..128)
        .map(|y| {
            (0..128)
                .map(|x| {
                    if (x as f64 - 64.0).hypot(y as f64 - 64.0) < 40.0 {
                        255
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let mut spec = serde_json::Map::new();
    for e in store.frames.values() {
        let faces: Vec<serde_json::Value> = e
            .faces
            .iter()
            .map(|f| {
                let [x0, y0, x1, y1] = f.face.bbox;
                // The mask's matrix: the face's legacy crop at 128 px.
                let m = faceswapd::geometry::crop_matrix(&f.face.legacy, 128, Centering::Face);
                serde_json::json!({
                    "x": x0.round() as i64, "y": y0.round() as i64,
                    "w": (x1 - x0).round() as i64, "h": (y1 - y0).round() as i64,
                    "landmarks": f.face.landmarks, "mask": disc, "matrix": [m.0[0], m.0[1]],
                })
            })
            .collect();
        spec.insert(e.name.clone(), faces.into());
    }
    // A frame the photos folder does not have.
    spec.insert("not_here.jpg".into(), serde_json::json!([]));
    let spec_path = root.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let fsa = root.path().join("photos_alignments.fsa");
    run_converter_python(BUILD_FSA, &[&spec_path, &fsa]).unwrap();

    let file = read_fsa(&fsa).unwrap();
    assert_eq!(file.version, Some(2.4));
    assert_eq!(file.frames.len(), 3);

    let photos = root.path().join("photos");
    let faceset = root.path().join("imported");
    let r = import_fsa(&fsa, &photos, &faceset, 64, Centering::DflFull).unwrap();
    println!("{r:?}");
    assert_eq!((r.frames, r.faces, r.files), (2, 4, 4));
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].contains("not_here.jpg"), "{:?}", r.skipped);

    let imported = Alignments::load(&faceset.join(ALIGNMENTS_FILE)).unwrap();
    let mut worst = 0f64;
    for (i, e) in &store.frames {
        for (a, b) in e.faces.iter().zip(&imported.frames[i].faces) {
            for (p, q) in a.face.landmarks.iter().zip(&b.face.landmarks) {
                worst = worst.max((p[0] - q[0]).hypot(p[1] - q[1]));
            }
            // The mask comes back through its matrix: a disc at the centre of its crop.
            let m = faceswapd::geometry::crop_matrix(&b.face.legacy, 128, Centering::Face);
            let plane = b.masks["components"].project(&m, 128).unwrap();
            assert!(plane.data[64 * 128 + 64] > 0.99 && plane.data[5 * 128 + 5] < 0.01);
            // The face file exists and knows its frame.
            let meta = read_face_meta(&faceset.join(b.file.as_ref().unwrap())).unwrap();
            assert_eq!((meta.frame, meta.size), (*i, 64));
        }
    }
    println!("landmarks within {worst:.1e} px of the originals (float32 in the .fsa)");
    assert!(worst < 1e-3);
    // Trainable: the faceset loads as training material.
    let set = faceswapd::train::faceset::load_faceset(&faceset, 64, None).unwrap();
    assert_eq!(set.faces.len(), 4);

    // The CLI imports through a daemon job, to the same faces.
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = faceswap_tests::DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let by_cli = root.path().join("imported-by-cli");
    let text = d
        .cli_job(
            &[
                "import",
                "fsa",
                &fsa.display().to_string(),
                &photos.display().to_string(),
                "--out",
                &by_cli.display().to_string(),
                "--size",
                "64",
                "--centering",
                "f",
            ],
            "import",
        )
        .unwrap();
    assert!(
        text.contains("imported 4 faces in 2 frames") && text.contains("not_here.jpg"),
        "{text}"
    );
    assert_eq!(
        Alignments::load(&by_cli.join(ALIGNMENTS_FILE))
            .unwrap()
            .frames
            .len(),
        imported.frames.len()
    );

    // Bad input: a file that is not an .fsa, and a faceset that already has alignments.
    let bad = root.path().join("bad.fsa");
    std::fs::write(&bad, b"not zlib at all").unwrap();
    let e = read_fsa(&bad).unwrap_err();
    assert!(e.contains("not a faceswap alignments file"), "{e}");
    let before = std::fs::read(faceset.join(ALIGNMENTS_FILE)).unwrap();
    let e = import_fsa(&fsa, &photos, &faceset, 64, Centering::DflFull).unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(
        std::fs::read(faceset.join(ALIGNMENTS_FILE)).unwrap(),
        before
    );
}
