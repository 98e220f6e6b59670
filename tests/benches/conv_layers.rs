//! Forward + backward time of SAEHD-DF 128 px's convolution shapes on the CPU, through our
//! GEMM convolution (`faceswap_models::conv::conv2d`) and, in the same run, burn-flex's own
//! `conv2d` (the baseline), with the ratio per layer and in total.
//!
//! `cargo bench -p faceswap-tests --bench conv_layers`; `FSPP_BENCH_BATCH` (8),
//! `FSPP_BENCH_REPEATS` (3 timed rounds after one untimed; the median is printed).

use std::time::Instant;

use faceswap_models::burn::tensor::ops::ConvOptions;
use faceswap_models::burn::tensor::{Device, Distribution, Tensor};
use faceswap_tests::env_or;

/// One layer: name, input channels, output channels, kernel, stride, input size.
type Layer = (&'static str, usize, usize, usize, usize, usize);

/// DFL's DeepFakeArchi at 128 px, e_dims 64, d_dims 64, ae_dims 256 (the train_step bench).
const LAYERS: [Layer; 11] = [
    ("encoder 1 (5×5/2)", 3, 64, 5, 2, 128),
    ("encoder 2 (5×5/2)", 64, 128, 5, 2, 64),
    ("encoder 3 (5×5/2)", 128, 256, 5, 2, 32),
    ("encoder 4 (5×5/2)", 256, 512, 5, 2, 16),
    ("decoder up 1 (3×3)", 256, 2048, 3, 1, 16),
    ("decoder res 1 (3×3)", 512, 512, 3, 1, 32),
    ("decoder up 2 (3×3)", 512, 1024, 3, 1, 32),
    ("decoder res 2 (3×3)", 256, 256, 3, 1, 64),
    ("decoder up 3 (3×3)", 256, 512, 3, 1, 64),
    ("decoder res 3 (3×3)", 128, 128, 3, 1, 128),
    ("output (1×1)", 128, 3, 1, 1, 128),
];

/// Milliseconds for one forward + backward of `layer` through `ours` or burn's convolution.
fn time_layer(layer: &Layer, batch: usize, ours: bool, device: &Device) -> f64 {
    let &(_, ci, co, k, s, n) = layer;
    let pad = faceswap_models::conv::same_padding(k, s, n);
    let options = ConvOptions::new_with_padding([s, s], [pad, pad], [1, 1], 1);
    let x = Tensor::<4>::random([batch, ci, n, n], Distribution::Normal(0.0, 1.0), device)
        .require_grad();
    let w =
        Tensor::<4>::random([co, ci, k, k], Distribution::Normal(0.0, 0.1), device).require_grad();
    let b = Tensor::<1>::zeros([co], device).require_grad();
    // The first layer's input is the image: no gradient flows into it, as in training.
    let x = if ci == 3 { x.detach() } else { x };
    let start = Instant::now();
    let y = if ours {
        faceswap_models::conv::conv2d(x, w.clone(), Some(b), options)
    } else {
        faceswap_models::burn::tensor::module::conv2d(x, w.clone(), Some(b), options)
    };
    let grads = (y * 0.5).sum().backward();
    let dw = w.grad(&grads).map(|g| g.into_data());
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(dw.is_some(), "no weight gradient");
    ms
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    faceswapd::memory::keep_freed_memory();
    let batch: usize = env_or("FSPP_BENCH_BATCH", 8);
    let repeats: usize = env_or::<usize>("FSPP_BENCH_REPEATS", 3).max(1);
    let device = Device::flex().autodiff();
    println!(
        "SAEHD-DF 128 px convolutions, batch {batch}, forward + backward, median of {repeats}"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>7}",
        "layer", "ours ms", "burn ms", "ratio"
    );
    let (mut total_ours, mut total_burn) = (0.0, 0.0);
    for layer in &LAYERS {
        time_layer(layer, batch, true, &device);
        time_layer(layer, batch, false, &device);
        let (mut ours, mut burn) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            ours.push(time_layer(layer, batch, true, &device));
            burn.push(time_layer(layer, batch, false, &device));
        }
        let (o, b) = (median(ours), median(burn));
        total_ours += o;
        total_burn += b;
        println!("{:<22} {o:>10.1} {b:>10.1} {:>6.2}×", layer.0, o / b);
    }
    println!(
        "{:<22} {total_ours:>10.1} {total_burn:>10.1} {:>6.2}×",
        "total",
        total_ours / total_burn
    );
}
