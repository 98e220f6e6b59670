//! Tests of smoothing and linking.

use super::*;
use crate::faceset::face::Face;
use crate::faceset::store::Alignments;

fn face_at(x: f64, y: f64, size: f64) -> Face {
    let mut landmarks = vec![[0.0; 2]; 68];
    for (i, p) in landmarks.iter_mut().enumerate() {
        let a = i as f64 / 68.0 * std::f64::consts::TAU;
        *p = [x + a.cos() * size, y + a.sin() * size];
    }
    // Eyes at ±size/2.
    landmarks[36..42].fill([x - size / 2.0, y]);
    landmarks[42..48].fill([x + size / 2.0, y]);
    Face {
        bbox: [x - size, y - size, x + size, y + size],
        score: 0.9,
        landmarks,
        presence: 0.95,
        legacy: crate::geometry::Affine::IDENTITY,
        distance: 1.0,
        roll_deg: 0.0,
        rejected: None,
        mesh: Vec::new(),
    }
}

#[test]
fn one_euro_removes_noise_at_rest_and_follows_motion() {
    let mut s = Smoother::new(Some(Smoothing::default()), 25.0);
    let mut seed = 7u64;
    let mut noise = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 2.0
    };
    let (mut raw_err, mut smooth_err) = (0.0, 0.0);
    for _ in 0..100 {
        let f = face_at(100.0 + noise(), 100.0 + noise(), 40.0);
        let out = s.smooth(std::slice::from_ref(&f));
        raw_err += (f.landmarks[0][0] - 140.0).abs();
        smooth_err += (out[0].landmarks[0][0] - 140.0).abs();
    }
    assert!(smooth_err < 0.6 * raw_err, "{smooth_err} vs {raw_err}");
    // A steady move of 2 px/frame is followed with a small lag.
    let mut last = 0.0;
    for t in 0..50 {
        let f = face_at(100.0 + 2.0 * t as f64, 100.0, 40.0);
        last = s.smooth(std::slice::from_ref(&f))[0].landmarks[0][0] - f.landmarks[0][0];
    }
    assert!(last.abs() < 4.0, "lag {last}");
}

#[test]
fn tracks_survive_a_gap_and_stay_apart() {
    use crate::faceset::store::{FrameEntry, StoredFace};
    let mut store = Alignments::new(crate::faceset::store::SourceInfo {
        path: "v.mp4".into(),
        width: 640,
        height: 360,
        fps: Some(25.0),
    });
    let stored = StoredFace::new;
    for i in 0..40u64 {
        let mut faces = vec![stored(face_at(400.0 - i as f64, 100.0, 30.0))];
        // The first face is hidden in frames 10-19, then returns a little further on.
        if !(10..20).contains(&i) {
            faces.push(stored(face_at(100.0 + i as f64, 120.0, 30.0)));
        }
        store.frames.insert(
            i,
            FrameEntry {
                name: format!("frame_{i:06}"),
                pts: None,
                faces,
            },
        );
    }
    let reports = link_tracks(&mut store, &Linking::default());
    assert_eq!(reports.len(), 2, "{reports:?}");
    let moving = reports.iter().find(|r| !r.lost.is_empty()).unwrap();
    assert_eq!(moving.lost, vec![(10, 19)]);
    assert_eq!(moving.frames, 30);
    assert!(reports.iter().all(|r| r.jitter.unwrap() < 1e-9));
    println!("{}", moving.line());
}
