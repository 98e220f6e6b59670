use super::*;
use crate::conv;
use burn::tensor::Device;

#[test]
fn separable_resize_equals_burns_bilinear_forward_and_gradient() {
    let device = Device::flex().autodiff();
    // Up 2×, down, odd ratios, one axis unchanged, and a single row.
    for (from, to) in [
        ([4, 5], [8, 10]),
        ([8, 8], [3, 5]),
        ([5, 7], [7, 7]),
        ([1, 6], [3, 4]),
    ] {
        let values: Vec<f32> = (0..2 * 3 * from[0] * from[1])
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let input = || {
            Tensor::<1>::from_floats(values.as_slice(), &device)
                .reshape([2, 3, from[0], from[1]])
                .require_grad()
        };
        // [2, 3, h, w]: a weighting, so that each output element's gradient differs.
        let weights = Tensor::<1>::from_floats(
            (0..2 * 3 * to[0] * to[1])
                .map(|i| 1.0 + (i as f32 * 0.11).cos())
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        )
        .reshape([2, 3, to[0], to[1]]);
        let (ours_in, theirs_in) = (input(), input());
        // Else `resize` below would be the gathers too, and the check would prove nothing.
        assert!(conv::on_flex(&theirs_in) && conv::on_flex(&theirs_in.clone().inner()));
        let ours = resize_separable(ours_in.clone(), to);
        // On burn-flex `resize` is burn's own bilinear kernel: the reference.
        let theirs = resize(theirs_in.clone(), to);
        assert_eq!(ours.dims(), [2, 3, to[0], to[1]]);
        let max_diff =
            |a: Tensor<4>, b: Tensor<4>| -> f32 { (a - b).abs().max().into_scalar::<f32>() };
        let forward = max_diff(ours.clone(), theirs.clone());
        assert!(
            forward < 1e-5,
            "{from:?} → {to:?}: forward differs by {forward}"
        );
        let g_ours = (ours * weights.clone()).sum().backward();
        let g_theirs = (theirs * weights).sum().backward();
        let (Some(a), Some(b)) = (ours_in.grad(&g_ours), theirs_in.grad(&g_theirs)) else {
            panic!("{from:?} → {to:?}: no input gradient");
        };
        let backward = max_diff(a, b);
        assert!(
            backward < 1e-4,
            "{from:?} → {to:?}: gradient differs by {backward}"
        );
    }
}

#[test]
fn curves_match_faceswap() {
    // Expected values from faceswap's `_get_curve` formula evaluated in Python.
    assert_eq!(
        curve(512, 128, 3, -0.33, SlopeMode::Full),
        vec![512, 256, 128]
    );
    assert_eq!(curve(16384, 16384, 1, -0.5, SlopeMode::Full), vec![16384]);
    assert_eq!(
        curve(512, 64, 4, -0.45, SlopeMode::Full),
        vec![512, 256, 128, 64]
    );
    assert_eq!(
        curve(512, 64, 6, -0.45, SlopeMode::Full),
        vec![512, 328, 224, 152, 96, 64]
    );
    assert_eq!(
        curve(512, 64, 5, 0.5, SlopeMode::CapMin),
        vec![512, 256, 128, 64, 64]
    );
    assert_eq!(
        curve(512, 64, 5, 0.5, SlopeMode::CapMax),
        vec![512, 512, 256, 128, 64]
    );
}

#[test]
fn efficientnet_v2_b0_has_keras_parameter_count() {
    // burn draws from one generator per process; keep other tests' draws out of ours.
    let _draws = crate::weights::random_draws();
    // Keras EfficientNetV2B0(include_top=False) holds 5,919,312 weights (7,200,312 with its
    // 1,281,000-weight top); burn counts batch-norm moving statistics as Keras does.
    let (net, ch) = EfficientNetV2::new(1.0, 1.0, &Device::flex());
    assert_eq!(ch, 1280);
    println!("EfficientNetV2-B0: {} weights", net.num_params());
    assert_eq!(net.num_params(), 5_919_312);
}
