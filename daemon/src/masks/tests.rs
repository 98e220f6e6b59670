//! Landmark masks against independent rasterisations, stored-mask round trips and
//! re-projection, post-processing.

use super::*;
use crate::geometry::MEAN_FACE_51;

/// A plausible 68-point face in a `size` square: the mean face (inner points), a jaw arc.
fn face(size: f64) -> [[f64; 2]; 68] {
    let place = |p: [f64; 2]| [size * (0.2 + 0.6 * p[0]), size * (0.15 + 0.6 * p[1])];
    let mut lm = [[0.0; 2]; 68];
    for (i, p) in MEAN_FACE_51.iter().enumerate() {
        lm[17 + i] = place(*p);
    }
    for (i, l) in lm.iter_mut().take(17).enumerate() {
        let t = std::f64::consts::PI * (i as f64 / 16.0);
        *l = place([0.5 - 0.55 * t.cos(), 0.45 + 0.6 * t.sin()]);
    }
    lm
}

/// Even–odd scanline rasterisation of a polygon at pixel centres (the test's own, independent
/// of the mask code's half-plane filler).
fn rasterise(poly: &[[f64; 2]], size: usize) -> Vec<bool> {
    let mut out = vec![false; size * size];
    for y in 0..size {
        let cy = y as f64 + 0.5;
        let mut xs = Vec::new();
        for i in 0..poly.len() {
            let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
            if (a[1] <= cy) != (b[1] <= cy) {
                xs.push(a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks(2) {
            if let [x0, x1] = pair {
                for x in 0..size {
                    let cx = x as f64 + 0.5;
                    if cx >= *x0 && cx <= *x1 {
                        out[y * size + x] = true;
                    }
                }
            }
        }
    }
    out
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    inter as f64 / union.max(1) as f64
}

#[test]
fn the_hull_mask_matches_a_polygon_rasterised_from_the_same_landmarks() {
    let size = 256;
    let lm = face(size as f64);
    let mask = landmark_mask(LandmarkMask::Hull, &lm, size);
    let ours: Vec<bool> = mask.data.iter().map(|v| *v > 0.5).collect();
    let hull = convex_hull(&lm);
    let theirs = rasterise(&hull, size);
    let v = iou(&ours, &theirs);
    println!("hull mask IoU against an independent rasterisation: {v:.4}");
    assert!(v >= 0.99, "IoU {v}");
}

#[test]
fn the_extended_mask_reaches_above_the_eyebrows_and_components_do_not() {
    let size = 256;
    let lm = face(size as f64);
    let top_row = |m: &Plane| (0..size).find(|y| (0..size).any(|x| m.data[y * size + x] > 0.5));
    let brows = lm[17..27].iter().map(|p| p[1]).fold(f64::MAX, f64::min);
    let components = landmark_mask(LandmarkMask::Components, &lm, size);
    let extended = landmark_mask(LandmarkMask::Extended, &lm, size);
    let (tc, te) = (top_row(&components).unwrap(), top_row(&extended).unwrap());
    println!("highest brow point y = {brows:.1}; components reach row {tc}, extended row {te}");
    assert!(
        (te as f64) < brows - 5.0,
        "extended must reach the forehead"
    );
    assert!((tc as f64) >= brows - 1.5, "components stop at the brows");
    // Both lie inside the hull of the (extended) points and cover most of the face.
    let area = |m: &Plane| m.data.iter().filter(|v| **v > 0.5).count();
    assert!(area(&extended) > area(&components));
}

#[test]
fn stored_masks_round_trip_within_the_quantisation() {
    let size = 128;
    let mut m = Plane::filled(size, size, 0.0);
    for (i, v) in m.data.iter_mut().enumerate() {
        *v = ((i * 37) % 1000) as f32 / 999.0;
    }
    let stored = StoredMask::new(&m, Affine::IDENTITY);
    let back = stored.plane().unwrap();
    let worst = m
        .data
        .iter()
        .zip(&back.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "stored mask: {} compressed bytes for {} pixels, worst error {worst:.5}",
        stored.data.len(),
        size * size
    );
    assert!(worst <= 0.5 / 255.0 + 1e-6, "worst error {worst}");
    // A damaged mask is an error, not a panic.
    let mut bad = stored.clone();
    bad.data.truncate(bad.data.len() / 2);
    assert!(bad.plane().is_err());
}

#[test]
fn a_stored_mask_reprojects_into_another_crop() {
    // A face in a frame; the mask stored in its own crop, then projected into the DFL crop
    // at 256 px must match the mask drawn directly in that crop.
    let frame_lm = face(400.0).map(|p| [p[0] + 100.0, p[1] + 50.0]);
    let stored = stored_landmark_mask(LandmarkMask::Hull, &frame_lm);
    let crop = crop_matrix(&legacy_matrix(&frame_lm), 256, Centering::DflFull);
    let projected = stored.project(&crop, 256).unwrap();
    let direct = landmark_mask(LandmarkMask::Hull, &frame_lm.map(|p| crop.apply(p)), 256);
    let a: Vec<bool> = projected.data.iter().map(|v| *v > 0.5).collect();
    let b: Vec<bool> = direct.data.iter().map(|v| *v > 0.5).collect();
    let v = iou(&a, &b);
    println!("re-projected 128 px mask vs direct 256 px mask: IoU {v:.4}");
    assert!(v > 0.97, "IoU {v}");
}

#[test]
fn post_processing_dilates_thresholds_and_blurs() {
    let size = 64;
    let lm = face(size as f64);
    let m = landmark_mask(LandmarkMask::Hull, &lm, size);
    let area = |m: &Plane| m.data.iter().filter(|v| **v > 0.5).count();
    let grown = PostProcess {
        dilation_percent: 5.0,
        ..PostProcess::default()
    }
    .apply(&m);
    let shrunk = PostProcess {
        dilation_percent: -5.0,
        ..PostProcess::default()
    }
    .apply(&m);
    assert!(area(&grown) > area(&m) && area(&shrunk) < area(&m));
    for box_blur in [false, true] {
        let soft = PostProcess {
            blur: 7,
            box_blur,
            passes: 2,
            ..PostProcess::default()
        }
        .apply(&m);
        let partial = soft
            .data
            .iter()
            .filter(|v| **v > 0.05 && **v < 0.95)
            .count();
        assert!(partial > 50, "blur softens the edge");
    }
    let mut noisy = m.clone();
    noisy.data[0] = 0.03;
    let clean = PostProcess {
        threshold_percent: 5.0,
        ..PostProcess::default()
    }
    .apply(&noisy);
    assert_eq!(clean.data[0], 0.0);
}
