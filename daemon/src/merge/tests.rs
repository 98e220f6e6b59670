//! Merge on synthetic frames: the geometry round trip, untouched pixels, modes and options.

use super::*;
use crate::geometry::MEAN_FACE_51;

/// Hands the destination face back unchanged, with full masks: merge must then restore the
/// frame (the identity round trip).
struct Identity {
    r: usize,
    centering: Centering,
}

impl FacePredictor for Identity {
    fn resolution(&self) -> usize {
        self.r
    }
    fn centering(&self) -> Centering {
        self.centering
    }
    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
        Ok(faces
            .iter()
            .map(|f| Prediction {
                face: f.clone(),
                face_mask: Plane::filled(self.r, self.r, 1.0),
                dst_mask: Plane::filled(self.r, self.r, 1.0),
            })
            .collect())
    }
}

/// A textured frame (smooth gradients plus a mid-frequency pattern) and 68 landmarks: the
/// mean face placed by a similarity, jaw/brow points spread around it.
fn scene(w: u32, h: u32, centre: [f64; 2], scale: f64, angle: f64) -> (RgbFrame, [[f64; 2]; 68]) {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            data.push((128.0 + 60.0 * (fx * 0.05).sin() + 30.0 * (fy * 0.031).cos()) as u8);
            data.push((100.0 + 0.2 * fx + 40.0 * ((fx + fy) * 0.043).sin()) as u8);
            data.push((90.0 + 0.15 * fy + 35.0 * ((fx - fy) * 0.037).cos()) as u8);
        }
    }
    let (sin, cos) = angle.sin_cos();
    let place = |p: [f64; 2]| {
        let (u, v) = ((p[0] - 0.5) * scale, (p[1] - 0.5) * scale);
        [centre[0] + u * cos - v * sin, centre[1] + u * sin + v * cos]
    };
    let mut lm = [[0.0; 2]; 68];
    for (i, p) in MEAN_FACE_51.iter().enumerate() {
        lm[17 + i] = place(*p);
    }
    // Jaw: an arc below the inner face.
    for (i, l) in lm.iter_mut().take(17).enumerate() {
        let t = std::f64::consts::PI * (i as f64 / 16.0);
        *l = place([0.5 - 0.55 * t.cos(), 0.45 + 0.6 * t.sin()]);
    }
    (
        RgbFrame {
            width: w,
            height: h,
            data,
        },
        lm,
    )
}

fn target(lm: [[f64; 2]; 68]) -> TargetFace {
    TargetFace {
        landmarks: lm,
        motion: Motion::default(),
        mask: None,
    }
}

#[test]
fn identity_round_trip_restores_the_face_and_leaves_the_rest_bit_identical() {
    let (frame, lm) = scene(320, 240, [150.0, 118.0], 70.0, 0.3);
    let mut model = Identity {
        r: 256,
        centering: Centering::DflWholeFace,
    };
    let settings = MergeSettings {
        mask_mode: MaskMode::Full,
        color: ColorTransfer::None,
        ..MergeSettings::default()
    };
    let out = merge_frame(&frame, &[target(lm)], &mut model, &settings).unwrap();
    // Inside: the crop square (away from its outermost pixel, where the mask fades).
    let m = face_matrix(&lm, 256, Centering::DflWholeFace);
    let (mut se, mut n, mut changed_outside) = (0f64, 0usize, 0usize);
    for y in 0..240 {
        for x in 0..320 {
            let q = m.apply([x as f64 + 0.5, y as f64 + 0.5]);
            let o = (y * 320 + x) * 3;
            let inside = q.iter().all(|v| (2.0..254.0).contains(v));
            let outside = q.iter().any(|v| !(-1.0..257.0).contains(v));
            for c in 0..3 {
                let d = out.data[o + c] as f64 - frame.data[o + c] as f64;
                if inside {
                    se += d * d;
                    n += 1;
                } else if outside && d != 0.0 {
                    changed_outside += 1;
                }
            }
        }
    }
    let psnr = 10.0 * (255.0f64.powi(2) / (se / n as f64).max(1e-12)).log10();
    println!("identity round trip: PSNR {psnr:.1} dB inside the face over {n} samples");
    assert!(psnr >= 40.0, "PSNR {psnr}");
    assert_eq!(changed_outside, 0, "pixels outside the face changed");
}

#[test]
fn original_mode_and_frames_without_faces_pass_through() {
    let (frame, lm) = scene(160, 120, [80.0, 60.0], 40.0, 0.0);
    let mut model = Identity {
        r: 64,
        centering: Centering::DflFull,
    };
    let original = MergeSettings {
        mode: MergeMode::Original,
        ..MergeSettings::default()
    };
    let out = merge_frame(&frame, &[target(lm)], &mut model, &original).unwrap();
    assert_eq!(out.data, frame.data);
    let out = merge_frame(&frame, &[], &mut model, &MergeSettings::default()).unwrap();
    assert_eq!(out.data, frame.data);
}

/// Paints the predicted face a flat colour so blending is visible.
struct Flat {
    r: usize,
    colour: Rgb,
    mask: f32,
}

impl FacePredictor for Flat {
    fn resolution(&self) -> usize {
        self.r
    }
    fn centering(&self) -> Centering {
        Centering::DflFull
    }
    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
        Ok(faces
            .iter()
            .map(|_| Prediction {
                face: vec![self.colour; self.r * self.r],
                face_mask: Plane::filled(self.r, self.r, self.mask),
                dst_mask: Plane::filled(self.r, self.r, 1.0),
            })
            .collect())
    }
}

fn changed(a: &RgbFrame, b: &RgbFrame) -> usize {
    a.data
        .chunks(3)
        .zip(b.data.chunks(3))
        .filter(|(p, q)| p != q)
        .count()
}

#[test]
fn erode_shrinks_and_face_scale_grows_the_replaced_area() {
    let (frame, lm) = scene(200, 160, [100.0, 80.0], 50.0, 0.0);
    let mut model = Flat {
        r: 64,
        colour: [1.0, 0.0, 0.0],
        mask: 1.0,
    };
    let base = MergeSettings {
        mask_mode: MaskMode::Dst,
        color: ColorTransfer::None,
        ..MergeSettings::default()
    };
    let area = |s: &MergeSettings, model: &mut Flat| {
        changed(
            &merge_frame(&frame, &[target(lm)], model, s).unwrap(),
            &frame,
        )
    };
    let plain = area(&base, &mut model);
    let eroded = area(
        &MergeSettings {
            erode: 40,
            ..base.clone()
        },
        &mut model,
    );
    let dilated = area(
        &MergeSettings {
            erode: -40,
            ..base.clone()
        },
        &mut model,
    );
    let bigger = area(
        &MergeSettings {
            face_scale: 20,
            ..base.clone()
        },
        &mut model,
    );
    let blurred = area(
        &MergeSettings {
            blur: 60,
            ..base.clone()
        },
        &mut model,
    );
    println!(
        "changed pixels: plain {plain}, eroded {eroded}, dilated {dilated}, +20% scale {bigger}, blurred {blurred}"
    );
    assert!(plain > 500);
    assert!(eroded < plain && dilated > plain && bigger > plain);
    // Blur is clipped to the predicted area: it never reaches past the dilated square.
    assert!(blurred < dilated * 2);
    // A zero learned mask replaces nothing.
    let mut none = Flat { mask: 0.0, ..model };
    let s = MergeSettings {
        mask_mode: MaskMode::LearnedPrd,
        ..base
    };
    assert_eq!(area(&s, &mut none), 0);
}

#[test]
fn seamless_keeps_the_face_gradients_and_meets_the_frame_at_the_border() {
    // Predicting the frame plus a constant offset: a Poisson clone removes the offset.
    struct Offset(usize);
    impl FacePredictor for Offset {
        fn resolution(&self) -> usize {
            self.0
        }
        fn centering(&self) -> Centering {
            Centering::DflFull
        }
        fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
            Ok(faces
                .iter()
                .map(|f| Prediction {
                    face: f.iter().map(|p| p.map(|c| (c + 0.2).min(1.0))).collect(),
                    face_mask: Plane::filled(self.0, self.0, 1.0),
                    dst_mask: Plane::filled(self.0, self.0, 1.0),
                })
                .collect())
        }
    }
    let (frame, lm) = scene(200, 160, [100.0, 80.0], 50.0, 0.1);
    let s = MergeSettings {
        mode: MergeMode::Seamless,
        mask_mode: MaskMode::Dst,
        color: ColorTransfer::None,
        ..MergeSettings::default()
    };
    let overlay = MergeSettings {
        mode: MergeMode::Overlay,
        ..s.clone()
    };
    let diff = |a: &RgbFrame| -> f64 {
        a.data
            .iter()
            .zip(&frame.data)
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
    };
    let clone = merge_frame(&frame, &[target(lm)], &mut Offset(64), &s).unwrap();
    let plain = merge_frame(&frame, &[target(lm)], &mut Offset(64), &overlay).unwrap();
    println!(
        "total |Δ| overlay {:.0}, seamless {:.0}",
        diff(&plain),
        diff(&clone)
    );
    assert!(diff(&clone) < 0.2 * diff(&plain));
}

#[test]
fn xseg_modes_need_an_xseg_model_and_bad_ranges_are_refused_clearly() {
    let (frame, lm) = scene(160, 120, [80.0, 60.0], 40.0, 0.0);
    let s = MergeSettings {
        mask_mode: MaskMode::XsegDst,
        ..MergeSettings::default()
    };
    let mut model = Identity {
        r: 64,
        centering: Centering::DflFull,
    };
    let e = merge_frame(&frame, &[target(lm)], &mut model, &s).unwrap_err();
    assert!(e.contains("XSeg model"), "{e}");
    let s = MergeSettings {
        erode: 900,
        ..MergeSettings::default()
    };
    assert!(s.validate().unwrap_err().to_string().contains("erode"));
}

/// A flat red face whose XSeg sees a disc in the middle of every crop.
struct WithXseg;

impl FacePredictor for WithXseg {
    fn resolution(&self) -> usize {
        64
    }
    fn centering(&self) -> Centering {
        Centering::DflFull
    }
    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
        Ok(faces
            .iter()
            .map(|_| Prediction {
                face: vec![[1.0, 0.0, 0.0]; 64 * 64],
                face_mask: Plane::filled(64, 64, 1.0),
                dst_mask: Plane::filled(64, 64, 1.0),
            })
            .collect())
    }
    fn segment(&mut self, faces: &[Vec<Rgb>]) -> Result<Option<Vec<Plane>>, String> {
        let disc = Plane {
            width: 32,
            height: 32,
            data: (0..32 * 32)
                .map(|i| {
                    let (x, y) = ((i % 32) as f32 - 15.5, (i / 32) as f32 - 15.5);
                    if x * x + y * y < 64.0 { 1.0 } else { 0.0 }
                })
                .collect(),
        };
        Ok(Some(vec![disc; faces.len()]))
    }
}

#[test]
fn xseg_modes_blend_through_the_xseg_masks() {
    let (frame, lm) = scene(200, 160, [100.0, 80.0], 50.0, 0.0);
    let full = MergeSettings {
        mask_mode: MaskMode::Full,
        color: ColorTransfer::None,
        ..MergeSettings::default()
    };
    let area_full = changed(
        &merge_frame(&frame, &[target(lm)], &mut WithXseg, &full).unwrap(),
        &frame,
    );
    for mode in [
        MaskMode::XsegDst,
        MaskMode::XsegPrd,
        MaskMode::XsegPrdTimesDst,
        MaskMode::LearnedTimesXseg,
    ] {
        let s = MergeSettings {
            mask_mode: mode,
            ..full.clone()
        };
        let area = changed(
            &merge_frame(&frame, &[target(lm)], &mut WithXseg, &s).unwrap(),
            &frame,
        );
        println!("{mode:?}: {area} pixels changed (full square: {area_full})");
        // The disc covers π·8²/32² ≈ 20 % of the crop.
        assert!(
            area > area_full / 10 && area < area_full / 3,
            "{mode:?}: {area}"
        );
    }
}

#[test]
fn motion_blur_and_sharpen_change_only_the_face() {
    let (frame, lm) = scene(200, 160, [100.0, 80.0], 50.0, 0.0);
    let mut model = Identity {
        r: 64,
        centering: Centering::DflFull,
    };
    let base = MergeSettings {
        mask_mode: MaskMode::Dst,
        color: ColorTransfer::None,
        ..MergeSettings::default()
    };
    let mut t = target(lm);
    t.motion = Motion {
        power: 30.0,
        angle: 0.0,
    };
    for s in [
        MergeSettings {
            motion_blur: 100,
            ..base.clone()
        },
        MergeSettings {
            sharpen: 80,
            sharpen_kind: SharpenKind::Gaussian,
            ..base.clone()
        },
    ] {
        let plain = merge_frame(&frame, std::slice::from_ref(&t), &mut model, &base).unwrap();
        let out = merge_frame(&frame, std::slice::from_ref(&t), &mut model, &s).unwrap();
        assert!(changed(&out, &plain) > 100, "{s:?} changed nothing");
        // Far corners are untouched.
        assert_eq!(out.data[..30], frame.data[..30]);
    }
}

#[test]
fn the_stored_mode_blends_through_the_faces_stored_mask() {
    use crate::masks::{LandmarkMask, stored_landmark_mask};
    let (frame, lm) = scene(200, 160, [100.0, 80.0], 50.0, 0.0);
    let mut model = Flat {
        r: 64,
        colour: [1.0, 0.0, 0.0],
        mask: 1.0,
    };
    let s = |mode| MergeSettings {
        mask_mode: mode,
        color: ColorTransfer::None,
        ..MergeSettings::default()
    };
    let area = |t: TargetFace, mode, model: &mut Flat| {
        changed(&merge_frame(&frame, &[t], model, &s(mode)).unwrap(), &frame)
    };
    let hull = area(target(lm), MaskMode::Dst, &mut model);
    let mut with_components = target(lm);
    with_components.mask = Some(stored_landmark_mask(LandmarkMask::Components, &lm));
    let components = area(with_components, MaskMode::Stored, &mut model);
    let mut with_extended = target(lm);
    with_extended.mask = Some(stored_landmark_mask(LandmarkMask::Extended, &lm));
    let extended = area(with_extended, MaskMode::Stored, &mut model);
    // No stored mask: the landmark hull.
    let fallback = area(target(lm), MaskMode::Stored, &mut model);
    println!(
        "changed pixels: hull {hull}, components {components}, extended {extended}, no mask {fallback}"
    );
    assert_eq!(fallback, hull);
    assert!(components > 0 && components <= hull + hull / 20);
    assert!(extended > components);
    assert_eq!("stored".parse::<MaskMode>().ok(), Some(MaskMode::Stored));
}
