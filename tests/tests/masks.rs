//! Landmark masks on the fixture faces, with landmarks from the real extractor.

use faceswap_tests::test_asset;
use faceswapd::extract::geometry::{Centering, crop_matrix, legacy_matrix};
use faceswapd::extract::image::{Pyramid, load_image};
use faceswapd::extract::pipeline::{ExtractSettings, Extractor, StageTimings};
use faceswapd::masks::{LandmarkMask, landmark_mask};
use faceswapd::paths::Dirs;
use faceswapd::train::augment::convex_hull;

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
    let photos = root.path().join("photos");
    faceswap_tests::copy_fixtures(
        &photos,
        &[
            "grace_hopper.jpg",
            "vladmandic_faceapi_sample3_multiface.jpg",
        ],
    )
    .unwrap();
    let faceset = root.path().join("faces");
    faceswap_tests::extract_faceset(&photos, &faceset, 96).unwrap();
    let kinds = [LandmarkMask::Components, LandmarkMask::Extended];
    let n = faceswapd::masks::generate_landmark_masks(&faceset, &kinds).unwrap();
    assert_eq!(n, 4);
    let store = faceswapd::extract::store::Alignments::load(
        &faceset.join(faceswapd::extract::ALIGNMENTS_FILE),
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
}
