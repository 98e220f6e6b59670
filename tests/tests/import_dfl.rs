//! DeepFaceLab aligned JPGs, built by this test with DFL's documented structure (a pickled dict
//! in the APP15 segment, NumPy arrays and lists as DFL stores them), bring their XSeg labels and
//! stored XSeg masks into the matching faces of a faceset extracted from the same photos.

use std::path::Path;

use faceswap_tests::{faceset_from_photos, run_converter_python};
use faceswapd::faceset::store::Alignments;
use faceswapd::faceset::{ALIGNMENTS_FILE, read_face_meta};
use faceswapd::import::{dfl::read_dfl_jpg, import_dfl_labels};
use faceswapd::warp::convex_hull;

/// Writes DFL aligned JPGs from a JSON list of faces: the pickled dict goes into an APP15
/// segment after the JPEG's own APPn segments, as DFLJPG.setDFLDictData places it.
const BUILD_DFL_JPGS: &str = r#"
import json, pickle, struct, sys
import numpy as np
for f in json.load(open(sys.argv[1])):
    d = {'face_type': 'whole_face', 'source_filename': f['source'],
         'source_rect': [10, 20, 110, 120],
         'source_landmarks': np.array(f['source_landmarks'], np.float32),
         'landmarks': f['landmarks'],
         'image_to_face_mat': np.array(f['mat'], np.float64),
         'eyebrows_expand_mod': 1.0, 'unknown_future_key': {'x': 1}}
    if f['legacy']:
        d['seg_ie_polys'] = [(t, p) for t, p in f['polys']]
    else:
        d['seg_ie_polys'] = {'polys': [{'type': t, 'pts': np.array(p, np.float32)} for t, p in f['polys']]}
    if f['xseg']:
        d['xseg_mask'] = np.frombuffer(open(f['xseg'], 'rb').read(), np.uint8)
    data = open(f['jpg_in'], 'rb').read()
    payload = pickle.dumps(d)
    seg = b'\xff\xef' + struct.pack('>H', len(payload) + 2) + payload
    i = 2
    while data[i] == 0xFF and 0xE0 <= data[i + 1] <= 0xEF:
        i += 2 + struct.unpack('>H', data[i + 2:i + 4])[0]
    open(f['out'], 'wb').write(data[:i] + seg + data[i:])
"#;

fn write_jpeg(path: &Path, size: u32) {
    let img = image::RgbImage::from_fn(size, size, |x, y| image::Rgb([x as u8, y as u8, 90]));
    img.save(path).unwrap();
}

#[test]
fn dfl_labels_and_xseg_masks_land_on_the_matching_faces() {
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
    let store_path = faceset.join(ALIGNMENTS_FILE);
    let store = Alignments::load(&store_path).unwrap();

    let dfl = root.path().join("dfl_aligned");
    std::fs::create_dir_all(&dfl).unwrap();
    let plain = root.path().join("plain.jpg");
    write_jpeg(&plain, 256);
    // DFL's aligned faces are 256 px here; the face → frame mapping is our crop scaled to it.
    let mut spec = Vec::new();
    let mut expected = Vec::new(); // (frame, face index, hull in frame pixels, mouth box)
    for (frame, entry) in &store.frames {
        for (i, f) in entry.faces.iter().enumerate() {
            let meta = read_face_meta(&faceset.join(f.file.as_ref().unwrap())).unwrap();
            let mat = meta.crop_at(256);
            let lm = f.face.landmarks68();
            let hull_frame = convex_hull(&lm);
            let to_face = |p: &[f64; 2]| mat.apply(*p);
            let hull: Vec<[f64; 2]> = hull_frame.iter().map(to_face).collect();
            let mouth = to_face(&lm[62]);
            let bx = vec![
                [mouth[0] - 20.0, mouth[1] - 12.0],
                [mouth[0] + 20.0, mouth[1] - 12.0],
                [mouth[0] + 20.0, mouth[1] + 12.0],
                [mouth[0] - 20.0, mouth[1] + 12.0],
            ];
            let n = spec.len();
            // A stored XSeg mask for the first face: a disc at the face centre.
            let xseg = (n == 0).then(|| {
                let p = root.path().join("xseg.png");
                image::GrayImage::from_fn(256, 256, |x, y| {
                    let d = (x as f64 - 128.0).hypot(y as f64 - 128.0);
                    image::Luma([if d < 60.0 { 255 } else { 0 }])
                })
                .save(&p)
                .unwrap();
                p
            });
            let jpg_in = root.path().join(format!("in{n}.jpg"));
            write_jpeg(&jpg_in, 256);
            // A little landmark noise: DFL's FAN landmarks are not ours.
            let noisy: Vec<[f64; 2]> = lm
                .iter()
                .enumerate()
                .map(|(k, p)| [p[0] + (k % 3) as f64 * 0.3, p[1] - (k % 2) as f64 * 0.3])
                .collect();
            spec.push(serde_json::json!({
                "source": entry.name,
                "source_landmarks": noisy,
                "landmarks": lm.iter().map(to_face).collect::<Vec<_>>(),
                "mat": [mat.0[0], mat.0[1]],
                // The exclude polygon first: DFL applies includes first whatever the order.
                "polys": [[0, bx], [1, hull]],
                "legacy": n == 1,
                "xseg": xseg,
                "jpg_in": jpg_in,
                "out": dfl.join(format!("{n:05}_0.jpg")),
            }));
            expected.push((*frame, i, hull_frame));
        }
    }
    assert_eq!(expected.len(), 4);
    // A face of a frame we do not have, and one whose landmarks are elsewhere in Hopper's frame.
    let hopper = &store
        .frames
        .values()
        .find(|e| e.name == "grace_hopper.jpg")
        .unwrap();
    let far: Vec<[f64; 2]> = hopper.faces[0]
        .face
        .landmarks68()
        .iter()
        .map(|p| [p[0] + 400.0, p[1]])
        .collect();
    for (n, source, lm) in [
        (10, "missing_frame.jpg", far.clone()),
        (11, "grace_hopper.jpg", far),
    ] {
        let mut f = spec[0].clone();
        f["source"] = source.into();
        f["source_landmarks"] = serde_json::json!(lm);
        f["xseg"] = serde_json::Value::Null;
        f["out"] = serde_json::json!(dfl.join(format!("{n:05}_0.jpg")));
        spec.push(f);
    }
    std::fs::copy(&plain, dfl.join("99999_0.jpg")).unwrap();
    let spec_path = root.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    run_converter_python(BUILD_DFL_JPGS, &[&spec_path]).unwrap();

    // The reader: NumPy arrays and lists, unknown keys ignored, includes first.
    let first = read_dfl_jpg(&dfl.join("00000_0.jpg")).unwrap();
    assert_eq!(first.face_type.as_deref(), Some("whole_face"));
    assert_eq!(first.source_rect, Some([10.0, 20.0, 110.0, 120.0]));
    assert_eq!(first.source_landmarks.as_ref().map(Vec::len), Some(68));
    assert_eq!(first.landmarks.as_ref().map(Vec::len), Some(68));
    assert!(first.image_to_face_mat.is_some() && first.xseg_mask.is_some());
    let kinds: Vec<bool> = first.seg_ie_polys.iter().map(|p| p.include).collect();
    assert_eq!(kinds, [true, false]);
    let err = read_dfl_jpg(&dfl.join("99999_0.jpg"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no DeepFaceLab metadata"), "{err}");

    let before = std::fs::read(&store_path).unwrap();
    let r = import_dfl_labels(&dfl, &faceset).unwrap();
    println!("{r:?}");
    assert_eq!((r.files, r.labelled, r.xseg_masks), (7, 4, 1));
    assert_eq!((r.unmatched.len(), r.errors.len()), (2, 1));
    assert!(
        r.unmatched[0].contains("no frame missing_frame.jpg"),
        "{:?}",
        r.unmatched
    );
    assert!(
        r.unmatched[1].contains("has its landmarks"),
        "{:?}",
        r.unmatched
    );
    assert_ne!(std::fs::read(&store_path).unwrap(), before);

    let store = Alignments::load(&store_path).unwrap();
    let mut worst = 0f64;
    for (frame, i, hull) in &expected {
        let face = &store.frames[frame].faces[*i];
        assert_eq!(face.labels.len(), 2);
        assert!(face.labels[0].include && !face.labels[1].include);
        assert_eq!(face.labels[0].points.len(), hull.len());
        for (a, b) in face.labels[0].points.iter().zip(hull) {
            worst = worst.max((a[0] - b[0]).hypot(a[1] - b[1]));
        }
    }
    println!("imported label vertices within {worst:.2e} px of the originals");
    assert!(worst < 1e-2);
    // DFL's mask, re-projected into its own crop, is the disc it was.
    let (frame, i, _) = &expected[0];
    let face = &store.frames[frame].faces[*i];
    let meta = read_face_meta(&faceset.join(face.file.as_ref().unwrap())).unwrap();
    let disc = face.masks["xseg"].project(&meta.crop_at(256), 256).unwrap();
    let at = |x: usize, y: usize| disc.data[y * 256 + x];
    assert!(at(128, 128) > 0.9 && at(128, 180) > 0.9 && at(128, 200) < 0.1 && at(10, 10) < 0.1);
    // The imported labels are training material.
    let fetched = faceswapd::masks::xseg::fetch_labelled(&faceset, &root.path().join("l")).unwrap();
    assert_eq!(fetched, 4);

    // The whole DFL folder as a new faceset, without the source frames: DFL's pixels and crop
    // matrices, frame landmarks, labels and the stored mask.
    let from_dfl = root.path().join("from_dfl");
    let r = faceswapd::import::import_dfl_faceset(&dfl, &from_dfl).unwrap();
    println!("{r:?}");
    assert_eq!(
        (r.faces, r.files, r.labelled, r.skipped.len()),
        (6, 6, 6, 1)
    );
    assert!(r.skipped[0].contains("no DeepFaceLab metadata"));
    let imported = Alignments::load(&from_dfl.join(ALIGNMENTS_FILE)).unwrap();
    assert_eq!(
        imported.frames.len(),
        3,
        "Hopper, the 3-face photo, the missing frame"
    );
    let set = faceswapd::train::faceset::load_faceset(&from_dfl, 64, None).unwrap();
    assert_eq!(set.faces.len(), 6);
    assert_eq!(
        set.centering().unwrap(),
        faceswapd::geometry::Centering::DflWholeFace
    );
    // A face file maps its frame landmarks into its pixels through DFL's own matrix.
    let hop = imported
        .frames
        .values()
        .find(|e| e.name == "grace_hopper.jpg")
        .unwrap();
    let meta = read_face_meta(&from_dfl.join(hop.faces[0].file.as_ref().unwrap())).unwrap();
    let nose = meta.crop.apply(hop.faces[0].face.landmarks68()[30]);
    println!("Hopper's nose at {nose:?} in the 256 px DFL face");
    assert!(nose[0] > 64.0 && nose[0] < 192.0 && nose[1] > 64.0 && nose[1] < 192.0);
    assert!(hop.faces[0].masks.contains_key("xseg"));
    let again = faceswapd::import::import_dfl_faceset(&dfl, &from_dfl).unwrap_err();
    assert!(again.contains("already exists"), "{again}");

    // The CLI imports through a daemon job, to the same faces.
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"));
    let d = faceswap_tests::DaemonUnderTest::start(&bin, &root.path().join("daemon")).unwrap();
    let by_cli = root.path().join("from_dfl_by_cli");
    let text = d
        .cli_job(
            &[
                "import",
                "dfl",
                &dfl.display().to_string(),
                "--out",
                &by_cli.display().to_string(),
            ],
            "import",
        )
        .unwrap();
    assert!(text.contains("imported 6 faces"), "{text}");
    // `xseg import-dfl` through the CLI puts the same labels on a fresh extraction.
    let fresh = faceset_from_photos(
        &root.path().join("second"),
        &[
            "grace_hopper.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
        64,
    )
    .unwrap();
    let out = d
        .cli(&[
            "xseg",
            "import-dfl",
            &dfl.display().to_string(),
            &fresh.display().to_string(),
        ])
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("labels for 4 faces, XSeg masks for 1"),
        "{said}"
    );
    let set = faceswapd::train::faceset::load_faceset(&by_cli, 64, None).unwrap();
    assert_eq!(set.faces.len(), 6);
}
