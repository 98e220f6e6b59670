use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};
use rand_distr::{Distribution, StandardNormal};

use super::*;

/// A smooth colour field with a chosen mean and spread, in gamut (no clipping).
fn field(w: usize, h: usize, base: Rgb, spread: f32, seed: u64) -> Vec<Rgb> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut mix = [[0f32; 3]; 3];
    for row in mix.iter_mut() {
        for v in row.iter_mut() {
            let n: f32 = StandardNormal.sample(&mut rng);
            *v = n * spread;
        }
    }
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32 / w as f32, (i / w) as f32 / h as f32);
            let n: [f32; 3] = std::array::from_fn(|_| {
                let z: f32 = StandardNormal.sample(&mut rng);
                z * 0.3
            });
            let feats = [x - 0.5 + n[0], y - 0.5 + n[1], (x * y) - 0.25 + n[2]];
            std::array::from_fn(|c| {
                (base[c] + (0..3).map(|k| mix[c][k] * feats[k]).sum::<f32>()).clamp(0.0, 1.0)
            })
        })
        .collect()
}

fn lab_stats(px: &[Rgb]) -> [(f64, f64); 3] {
    let lab: Vec<[f32; 3]> = px.iter().map(|p| rgb_to_lab(*p)).collect();
    std::array::from_fn(|c| channel_mean_std(&lab, c))
}

#[test]
fn lab_round_trips() {
    for p in [
        [0.2, 0.5, 0.7],
        [0.9, 0.1, 0.3],
        [0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0],
    ] {
        let q = lab_to_rgb(rgb_to_lab(p));
        for c in 0..3 {
            assert!((p[c] - q[c]).abs() < 1e-3, "{p:?} → {q:?}");
        }
    }
    // OpenCV: white is L 100, a = b = 0.
    let w = rgb_to_lab([1.0; 3]);
    assert!((w[0] - 100.0).abs() < 0.01 && w[1].abs() < 0.01 && w[2].abs() < 0.01);
}

#[test]
fn rct_matches_lab_mean_and_spread() {
    let face = field(48, 48, [0.55, 0.45, 0.40], 0.08, 1);
    let target = field(48, 48, [0.60, 0.50, 0.42], 0.10, 2);
    let mut out = face.clone();
    transfer(ColorTransfer::Rct, &mut out, &target, 48, None, 0);
    let (o, t) = (lab_stats(&out), lab_stats(&target));
    for c in 0..3 {
        println!(
            "rct LAB channel {c}: mean {:.3} vs {:.3}, std {:.3} vs {:.3}",
            o[c].0, t[c].0, o[c].1, t[c].1
        );
        assert!((o[c].0 - t[c].0).abs() < 0.15, "mean channel {c}");
        assert!(
            (o[c].1 - t[c].1).abs() < 0.05 * t[c].1 + 0.05,
            "std channel {c}"
        );
    }
}

fn assert_cov_matches(out: &[Rgb], target: &[Rgb], ddof: usize, tol: f64, what: &str) {
    let (mo, co) = mean_cov(out, ddof);
    let (mt, ct) = mean_cov(target, ddof);
    let dm = (mo - mt).abs().max();
    let dc = (co - ct).abs().max();
    println!("{what}: mean error {dm:.2e}, covariance error {dc:.2e}");
    assert!(dm < 1e-3, "{what} mean off by {dm}");
    assert!(dc < tol, "{what} covariance off by {dc}");
}

#[test]
fn lct_and_mkl_match_mean_and_covariance() {
    let face = field(64, 64, [0.5, 0.42, 0.38], 0.06, 3);
    let target = field(64, 64, [0.58, 0.47, 0.4], 0.09, 4);
    let mut out = face.clone();
    transfer(ColorTransfer::Lct, &mut out, &target, 64, None, 0);
    // DFL's ε·I on both covariances leaves an error of about ε·σt²/σs².
    assert_cov_matches(&out, &target, 0, 1e-3, "lct");
    let mut out = face.clone();
    transfer(ColorTransfer::Mkl, &mut out, &target, 64, None, 0);
    assert_cov_matches(&out, &target, 1, 1e-3, "mkl");
}

/// Kolmogorov–Smirnov distance between two samples.
fn ks(a: &[f32], b: &[f32]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f32::total_cmp);
    b.sort_by(f32::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn idt_matches_marginal_histograms() {
    let face = field(64, 64, [0.45, 0.4, 0.35], 0.07, 5);
    // A target that no linear map reaches: a mixture of two colour clusters.
    let mut target = field(64, 64, [0.7, 0.5, 0.4], 0.04, 6);
    for p in target.iter_mut().step_by(3) {
        *p = [p[0] - 0.3, p[1] - 0.1, p[2] + 0.15];
    }
    let mut out = face.clone();
    transfer(ColorTransfer::Idt, &mut out, &target, 64, None, 7);
    for c in 0..3 {
        let o: Vec<f32> = out.iter().map(|p| p[c]).collect();
        let t: Vec<f32> = target.iter().map(|p| p[c]).collect();
        let f: Vec<f32> = face.iter().map(|p| p[c]).collect();
        let (before, after) = (ks(&f, &t), ks(&o, &t));
        println!("idt channel {c}: KS {before:.3} → {after:.3}");
        assert!(after < 0.05, "channel {c} KS {after}");
    }
}

#[test]
fn masked_statistics_ignore_pixels_outside_the_mask() {
    let (w, h) = (40, 40);
    let face = field(w, h, [0.5, 0.45, 0.4], 0.06, 8);
    let target = field(w, h, [0.6, 0.5, 0.45], 0.08, 9);
    let mask: Vec<f32> = (0..w * h)
        .map(|i| if (i % w) < w / 2 { 1.0 } else { 0.0 })
        .collect();
    // Outside the mask: wild colours that would dominate any unmasked statistic.
    let scramble = |v: &[Rgb], k: f32| {
        v.iter()
            .zip(&mask)
            .map(|(p, m)| if *m > 0.5 { *p } else { [k, 1.0 - k, k] })
            .collect::<Vec<_>>()
    };
    for kind in [
        ColorTransfer::Rct,
        ColorTransfer::Lct,
        ColorTransfer::Mkl,
        ColorTransfer::Idt,
        ColorTransfer::Sot,
        ColorTransfer::Mix,
        ColorTransfer::AvgColor,
        ColorTransfer::MatchHist,
    ] {
        let stats = StatsMask {
            weights: &mask,
            statistics: MaskStatistics::InsideMask,
        };
        let mut clean = face.clone();
        transfer(kind, &mut clean, &target, w, Some(stats), 11);
        let mut noisy = scramble(&face, 0.95);
        transfer(
            kind,
            &mut noisy,
            &scramble(&target, 0.05),
            w,
            Some(stats),
            11,
        );
        for (i, m) in mask.iter().enumerate() {
            if *m > 0.5 {
                for c in 0..3 {
                    let d = (clean[i][c] - noisy[i][c]).abs();
                    assert!(d < 1e-5, "{kind:?} pixel {i} channel {c} differs by {d}");
                }
            }
        }
        // With DFL parity the zeroed outside pixels do move the statistics.
        let parity = StatsMask {
            weights: &mask,
            statistics: MaskStatistics::DflParity,
        };
        if matches!(
            kind,
            ColorTransfer::Rct | ColorTransfer::Mkl | ColorTransfer::Lct
        ) {
            let mut p = face.clone();
            transfer(kind, &mut p, &target, w, Some(parity), 11);
            let moved = p
                .iter()
                .zip(&clean)
                .any(|(a, b)| (0..3).any(|c| (a[c] - b[c]).abs() > 1e-3));
            assert!(moved, "{kind:?}: DFL parity must count the zeroed pixels");
        }
    }
}

#[test]
fn sot_moves_the_mean_towards_the_target() {
    let face = field(32, 32, [0.4, 0.4, 0.4], 0.05, 12);
    let target = field(32, 32, [0.6, 0.5, 0.3], 0.05, 13);
    let mut out = face.clone();
    transfer(ColorTransfer::Sot, &mut out, &target, 32, None, 1);
    let (mf, mo, mt) = (mean(&face), mean(&out), mean(&target));
    println!(
        "sot mean distance {:.3} → {:.3}",
        (mf - mt).norm(),
        (mo - mt).norm()
    );
    assert!((mo - mt).norm() < 0.25 * (mf - mt).norm());
}

#[test]
fn manual_balance_and_avg_color_shift_as_configured() {
    let face = vec![[0.5f32, 0.5, 0.5]; 16];
    let mut out = face.clone();
    let m = ManualBalance {
        space: BalanceSpace::Rgb,
        balance: [10.0, 0.0, -10.0],
        contrast: 0.0,
        brightness: 0.0,
    };
    transfer(ColorTransfer::Manual(m), &mut out, &face, 4, None, 0);
    assert!((out[0][0] - 0.6).abs() < 1e-6 && (out[0][2] - 0.4).abs() < 1e-6);
    let target = vec![[0.6f32, 0.5, 0.4]; 16];
    let mut out = face.clone();
    transfer(ColorTransfer::AvgColor, &mut out, &target, 4, None, 0);
    assert!((out[3][0] - 0.6).abs() < 1e-6 && (out[3][2] - 0.4).abs() < 1e-6);
    for p in [[0.2, 0.6, 0.9], [0.9, 0.3, 0.1]] {
        let q = hsv_to_rgb(rgb_to_hsv(p));
        assert!((0..3).all(|c| (p[c] - q[c]).abs() < 1e-5));
    }
}
