//! The optional S3FD + FAN path, driven by tiny ONNX models with the same signatures that this
//! test builds itself (with the `onnx` package of the pinned converter venv): their outputs are
//! fixed, so the decoded box and landmarks have exact expected positions.

use std::path::{Path, PathBuf};
use std::process::Command;

use faceswapd::extract::pipeline::{Extractor, StageTimings};
use faceswapd::faceset::face::ExtractSettings;
use faceswapd::geometry::MEAN_FACE_51;
use faceswapd::media::RgbFrame;
use faceswapd::paths::Dirs;
use faceswapd::sampling::{Pyramid, roi_map};

const BUILD_MODEL: &str = r#"
import json, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

kind, out = sys.argv[1], sys.argv[2]

def save(input_shape, outputs):
    # Each output = mean(input) * 0 + constant: the signature of the real net, fixed values.
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "zero")]
    infos = []
    for name, arr in outputs:
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name + "_value"))
        nodes.append(helper.make_node("Add", ["z", name + "_value"], [name]))
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)], infos, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)

if kind == "s3fd":
    outputs = []
    for stride in [4, 8, 16, 32, 64, 128]:
        n = 640 // stride
        cls = np.zeros((1, 2, n, n)); cls[0, 0] = 5.0
        reg = np.zeros((1, 4, n, n))
        if stride == 16:  # one face: cell x=10, y=12, box 64 px, shifted by the regression
            cls[0, 0, 12, 10] = -5.0; cls[0, 1, 12, 10] = 5.0
            reg[0, :, 12, 10] = [0.5, -0.25, 0.0, 0.0]
        outputs += [("cls%d" % stride, cls), ("reg%d" % stride, reg)]
    save([1, 3, 640, 640], outputs)
else:
    peaks = json.loads(sys.argv[3])
    heat = np.zeros((1, 68, 64, 64))
    for i, (x, y) in enumerate(peaks):
        heat[0, i, y, x] = 1.0
    save([1, 3, 256, 256], [("heatmaps", heat)])
"#;

fn converter_python() -> PathBuf {
    faceswap_tests::converter_python().unwrap()
}

fn build(kind: &str, out: &Path, extra: &[String]) {
    let status = Command::new(converter_python())
        .arg("-c")
        .arg(BUILD_MODEL)
        .arg(kind)
        .arg(out)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success(), "building the {kind} test model");
}

#[test]
fn s3fd_and_fan_onnx_models_drive_the_pipeline() {
    let root = tempfile::tempdir().unwrap();
    // Heatmap peaks: the mean face for points 17..67, a jaw arc for 0..16, in 64-px heatmap space.
    let mut peaks: Vec<[usize; 2]> = (0..17)
        .map(|i| {
            let a = std::f64::consts::PI * i as f64 / 16.0;
            [
                (32.0 - 18.0 * a.cos()).round() as usize,
                (30.0 + 16.0 * a.sin()).round() as usize,
            ]
        })
        .collect();
    peaks.extend(MEAN_FACE_51.iter().map(|p| {
        [
            (16.0 + 32.0 * p[0]).round() as usize,
            (18.0 + 32.0 * p[1]).round() as usize,
        ]
    }));
    let s3fd = root.path().join("s3fd.onnx");
    let fan = root.path().join("fan.onnx");
    build("s3fd", &s3fd, &[]);
    build("fan", &fan, &[serde_peaks(&peaks)]);

    let dirs = Dirs::resolve().unwrap();
    let mut files = faceswapd::extract::default_models(&dirs).unwrap();
    files.s3fd = Some(s3fd);
    files.fan = Some(fan);
    let settings = ExtractSettings {
        second_pass: false,
        rotate_retry: false,
        ..ExtractSettings::default()
    };
    let mut ex = Extractor::load(&files, settings).unwrap();
    let frame = RgbFrame {
        width: 640,
        height: 640,
        data: vec![128; 640 * 640 * 3],
    };
    let faces = ex
        .process(&Pyramid::new(frame), &mut StageTimings::default())
        .unwrap();
    assert_eq!(faces.len(), 1);
    // Anchor 64 px at (10.5, 12.5) × 16, moved by (0.5, -0.25) × 0.1 × 64.
    let (cx, cy) = (168.0 + 3.2, 200.0 - 1.6);
    let expect_box = [cx - 32.0, cy - 32.0, cx + 32.0, cy + 32.0];
    for (a, b) in faces[0].bbox.iter().zip(expect_box) {
        assert!(
            (a - b).abs() < 1e-3,
            "box {:?} vs {expect_box:?}",
            faces[0].bbox
        );
    }
    // FAN crop as DFL: centre raised 12 % of the height, side 200 (w + h) / 195, upright.
    let roi = roi_map([cx, cy - 64.0 * 0.12], 200.0 * 128.0 / 195.0, 0.0, 256);
    for (i, (got, peak)) in faces[0].landmarks.iter().zip(&peaks).enumerate() {
        let want = roi.apply([(peak[0] as f64 + 0.5) * 4.0, (peak[1] as f64 + 0.5) * 4.0]);
        assert!(
            (got[0] - want[0]).abs() < 1e-3 && (got[1] - want[1]).abs() < 1e-3,
            "landmark {i}: {got:?} vs {want:?}"
        );
    }
    println!(
        "S3FD box {:?}; FAN landmarks mapped back exactly",
        faces[0].bbox
    );

    // A model with the wrong signature as S3FD: a clear error, no crash.
    let mut wrong = files.clone();
    wrong.s3fd = wrong.fan.clone();
    let mut ex = Extractor::load(&wrong, ExtractSettings::default()).unwrap();
    let frame = RgbFrame {
        width: 64,
        height: 64,
        data: vec![0; 64 * 64 * 3],
    };
    let err = ex
        .process(&Pyramid::new(frame), &mut StageTimings::default())
        .unwrap_err();
    assert!(err.to_string().contains("S3FD"), "{err}");
}

fn serde_peaks(peaks: &[[usize; 2]]) -> String {
    let inner: Vec<String> = peaks
        .iter()
        .map(|p| format!("[{}, {}]", p[0], p[1]))
        .collect();
    format!("[{}]", inner.join(", "))
}
