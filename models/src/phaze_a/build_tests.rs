use super::*;
use crate::SideBatch;
use crate::face_model::ModelOptions;
use crate::train::{FaceTrainer, TrainerConfig};
use burn::tensor::{Device, Distribution};

pub(crate) fn batch(res: usize, seed: f32, device: &Device) -> SideBatch {
    // Drawn under the trainers' lock: tests comparing seeded runs share the generator.
    let _draws = crate::weights::random_draws();
    let img = Tensor::<4>::random([2, 3, res, res], Distribution::Uniform(0.0, 1.0), device)
        .mul_scalar(0.5)
        .add_scalar(seed * 0.25);
    SideBatch::unmasked(img)
}

/// Builds `o`, checks every output's shape, takes one training step and returns the
/// parameter count.
fn build_and_step(name: &str, o: &PhazeAOptions) -> usize {
    build_and_step_in(name, o, crate::train::Precision::F32)
}

fn build_and_step_in(name: &str, o: &PhazeAOptions, precision: crate::train::Precision) -> usize {
    let res = o.output_size;
    let device = Device::flex().autodiff();
    let mut t = FaceTrainer::new(
        ModelOptions::PhazeA(o.clone()),
        &device,
        TrainerConfig {
            precision,
            ..TrainerConfig::default()
        },
    );
    let crate::face_model::FaceModel::PhazeA(model) = t.model() else {
        panic!("not a Phaze-A model");
    };
    let params = model.num_params();
    let x = Tensor::<4>::zeros([1, 3, res, res], &device);
    let out = model.forward(x.clone(), x.clone());
    for (img, mask) in [&out.a, &out.b, &out.b_to_a, &out.a_to_b] {
        assert_eq!(img.dims(), [1, 3, res, res], "{name}");
        assert_eq!(mask.dims(), [1, 1, res, res], "{name}");
    }
    let swap = model.swap(x);
    assert_eq!(swap.face.dims(), [1, 3, res, res], "{name}");
    let before = t.weight_values();
    let (a, b) = (batch(res, 0.0, &device), batch(res, 1.0, &device));
    // Mixed precision skips steps whose gradients overflow, halving the loss scale (batch
    // norms' running statistics still move in the forward pass, as in Keras).
    let mut stats = t.train_step(&a, &b);
    while stats.loss_scale.is_some_and(|(_, overflowed)| overflowed) {
        assert!(t.step() < 8, "{name}: every step overflowed");
        stats = t.train_step(&a, &b);
    }
    assert!(
        stats.loss_a.is_finite() && stats.loss_b.is_finite(),
        "{name}: {stats:?}"
    );
    let after = t.weight_values();
    assert_ne!(before, after, "{name}: the step changed no weight");
    println!(
        "Phaze-A {name} {res}px (encoder input {}): {params} parameters, step loss {:.4}/{:.4}",
        o.input_size(),
        stats.loss_a,
        stats.loss_b
    );
    params
}

#[test]
fn every_preset_builds_at_64_px_and_trains_a_step() {
    // The trainer holds the process's random-draw lock itself.
    for (name, _) in PRESETS {
        let o = PhazeAOptions::preset(name)
            .unwrap()
            .at_resolution(64)
            .unwrap();
        build_and_step(name, &o);
    }
}

/// Small widths so a sample of option combinations builds and steps quickly.
pub(crate) fn small() -> PhazeAOptions {
    PhazeAOptions {
        output_size: 64,
        enc_scaling: 7,
        bottleneck_size: 64,
        fc_min_filters: 32,
        fc_max_filters: 32,
        fc_upsample_filters: 32,
        fc_gblock_min_nodes: 32,
        fc_gblock_max_nodes: 32,
        dec_min_filters: 16,
        dec_max_filters: 64,
        fs_original_min_filters: 16,
        fs_original_max_filters: 64,
        ..PhazeAOptions::default()
    }
}

#[test]
fn option_combinations_build_and_train_a_step() {
    let combos: Vec<(&str, PhazeAOptions)> = vec![
        ("faceswap defaults (small)", small()),
        (
            "avg-pool bottleneck, layer norm, resize-images decoder, batch norm",
            PhazeAOptions {
                bottleneck_type: BottleneckType::AveragePooling,
                bottleneck_norm: NormKind::Layer,
                bottleneck_in_encoder: false,
                dec_upscale_method: UpscaleMethod::ResizeImages,
                dec_norm: NormKind::Batch,
                ..small()
            },
        ),
        (
            "max-pool, instance norm, transpose decoder, split G-block, split decoders",
            PhazeAOptions {
                bottleneck_type: BottleneckType::MaxPooling,
                bottleneck_norm: NormKind::Instance,
                dec_upscale_method: UpscaleMethod::Transpose,
                dec_norm: NormKind::Instance,
                split_gblock: true,
                split_decoders: true,
                ..small()
            },
        ),
        (
            "shared fc full, no G-block, fc depth 3, two subpixel fc upsamples, cap-min",
            PhazeAOptions {
                shared_fc: SharedFc::Full,
                enable_gblock: false,
                fc_depth: 3,
                fc_min_filters: 16,
                fc_dimensions: 4,
                fc_upsampler: UpscaleMethod::Subpixel,
                fc_upsamples: 2,
                dec_slope_mode: SlopeMode::CapMin,
                dec_res_blocks: 2,
                dec_skip_last_residual: false,
                ..small()
            },
        ),
        (
            "EfficientNetV2-B1 at half width, rms bottleneck, upsample2d decoder, 128 px",
            PhazeAOptions {
                output_size: 128,
                enc_architecture: EncoderArch::EfficientNetV2B1,
                enc_scaling: 15,
                enc_width: 0.5,
                enc_depth: 0.5,
                bottleneck_norm: NormKind::Rms,
                dec_upscale_method: UpscaleMethod::Upsample2d,
                dec_norm: NormKind::Layer,
                shared_fc: SharedFc::Half,
                ..small()
            },
        ),
    ];
    for (name, o) in &combos {
        o.check().unwrap();
        build_and_step(name, o);
    }
}

#[test]
fn every_norm_and_upscale_trains_in_mixed_precision() {
    use crate::train::Precision;
    let combos = [
        (
            "EfficientNetV2 (batch norm, squeeze-excite), G-block noise, rms bottleneck",
            PhazeAOptions {
                output_size: 64,
                enc_architecture: EncoderArch::EfficientNetV2B0,
                bottleneck_norm: NormKind::Rms,
                enc_scaling: 15,
                enc_width: 0.5,
                enc_depth: 0.5,
                ..small()
            },
        ),
        (
            "layer/instance/batch norms, resize-images and transpose upscales",
            PhazeAOptions {
                bottleneck_norm: NormKind::Layer,
                bottleneck_type: BottleneckType::MaxPooling,
                dec_norm: NormKind::Batch,
                dec_upscale_method: UpscaleMethod::ResizeImages,
                fc_upsampler: UpscaleMethod::Transpose,
                ..small()
            },
        ),
        (
            "instance norm, bilinear upscales, decoder noise",
            PhazeAOptions {
                bottleneck_norm: NormKind::Instance,
                bottleneck_in_encoder: false,
                dec_norm: NormKind::Instance,
                dec_upscale_method: UpscaleMethod::Upsample2d,
                dec_gaussian: true,
                ..small()
            },
        ),
    ];
    for precision in [Precision::Bf16, Precision::F16] {
        for (name, o) in &combos {
            o.check().unwrap();
            build_and_step_in(&format!("{name} ({precision:?})"), o, precision);
        }
    }
}

#[test]
fn presets_parse_and_bad_options_are_named() {
    for (name, _) in PRESETS {
        let o = PhazeAOptions::preset(name).unwrap();
        assert_eq!(PhazeAOptions::from_toml(&o.to_toml()).unwrap(), o, "{name}");
    }
    let o = PhazeAOptions::preset("fspp-256").unwrap();
    assert_eq!((o.output_size, o.input_size()), (256, 128));
    assert_eq!(o.at_resolution(128).unwrap().input_size(), 128);
    let err = PhazeAOptions::from_toml("output_size = 128\nfc_dimension = 4\n").unwrap_err();
    assert!(err.to_string().contains("fc_dimension"), "{err}");
    let err = PhazeAOptions::from_toml("output_size = 96\n").unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
    assert!(
        PhazeAOptions::preset("nope")
            .unwrap_err()
            .to_string()
            .contains("fspp-256")
    );
}
