use super::*;

/// faceswap's `model_phaze_a_dfl-saehd-df_preset.json` values, as its GUI saves them.
const FACESWAP_DF: &str = r#"{
  "output_size": 128, "shared_fc": "none", "enable_gblock": false, "split_fc": false,
  "split_gblock": false, "split_decoders": true, "enc_architecture": "fs_original",
  "enc_scaling": 13, "enc_load_weights": false, "bottleneck_type": "dense",
  "bottleneck_norm": "none", "bottleneck_size": 256, "bottleneck_in_encoder": false,
  "fc_depth": 1, "fc_min_filters": 256, "fc_max_filters": 256, "fc_dimensions": 8,
  "fc_filter_slope": -0.5, "fc_dropout": 0.0, "fc_upsampler": "subpixel",
  "fc_upsamples": 1, "fc_upsample_filters": 256, "fc_gblock_depth": 3,
  "fc_gblock_min_nodes": 512, "fc_gblock_max_nodes": 512, "fc_gblock_filter_slope": -0.5,
  "fc_gblock_dropout": 0.0, "dec_upscale_method": "subpixel", "dec_upscales_in_fc": 0,
  "dec_norm": "none", "dec_min_filters": 128, "dec_max_filters": 512,
  "dec_slope_mode": "full", "dec_filter_slope": -0.33, "dec_res_blocks": 1,
  "dec_output_kernel": 1, "dec_gaussian": false, "dec_skip_last_residual": false,
  "freeze_layers": "encoder", "load_layers": "encoder", "fs_original_depth": 4,
  "fs_original_min_filters": 64, "fs_original_max_filters": 512,
  "fs_original_use_alt": false, "mobilenet_width": 1.0, "mobilenet_depth": 1,
  "mobilenet_dropout": 0.001, "__filetype": "faceswap_preset",
  "__section": "train|model|phaze_a"
}"#;

#[test]
fn faceswap_json_presets_read_as_ours() {
    let (o, notes) = PhazeAOptions::from_faceswap_json(FACESWAP_DF).unwrap();
    assert_eq!(o, PhazeAOptions::preset("dfl-saehd-df").unwrap());
    assert_eq!(notes.len(), 2, "freeze_layers and load_layers: {notes:?}");
    // Faceswap++'s 256px.json (aopsr/faceswap): its ImageNet encoder weights are noted.
    let fspp = PhazeAOptions::preset("fspp-256").unwrap();
    let mut json: serde_json::Value = serde_json::from_str(FACESWAP_DF).unwrap();
    let changes = serde_json::json!({
        "output_size": 256, "enable_gblock": true, "split_fc": true, "split_decoders": false,
        "enc_architecture": "efficientnet_v2_b0", "enc_scaling": 60, "enc_load_weights": true,
        "bottleneck_norm": "rms", "bottleneck_size": 512, "bottleneck_in_encoder": true,
        "fc_min_filters": 1024, "fc_max_filters": 1024, "fc_dimensions": 4,
        "fc_upsamples": 0, "fc_upsample_filters": 512, "dec_min_filters": 64,
        "dec_filter_slope": -0.45, "dec_output_kernel": 5, "dec_type": "original",
        "d_dims": 64, "dec_filters": "", "fs_original_min_filters": 128,
        "fs_original_max_filters": 1024, "dec_max_filters": 512
    });
    for (k, v) in changes.as_object().unwrap() {
        json[k] = v.clone();
    }
    let (o, notes) = PhazeAOptions::from_faceswap_json(&json.to_string()).unwrap();
    assert_eq!(o, fspp);
    assert!(notes.iter().any(|n| n.contains("ImageNet")), "{notes:?}");
    // What cannot be built is refused by name.
    for (key, value, named) in [
        (
            "dec_upscale_method",
            serde_json::json!("upscale_dny"),
            "upscale_dny",
        ),
        (
            "enc_architecture",
            serde_json::json!("resnet50"),
            "resnet50",
        ),
        (
            "dec_upscales_in_fc",
            serde_json::json!(2),
            "dec_upscales_in_fc",
        ),
        ("some_new_option", serde_json::json!(1), "some_new_option"),
    ] {
        let mut bad: serde_json::Value = serde_json::from_str(FACESWAP_DF).unwrap();
        bad[key] = value;
        let err = PhazeAOptions::from_faceswap_json(&bad.to_string()).unwrap_err();
        assert!(err.to_string().contains(named), "{key}: {err}");
    }
    let other = FACESWAP_DF.replace("train|model|phaze_a", "train|model|dlight");
    assert!(PhazeAOptions::from_faceswap_json(&other).is_err());
}
