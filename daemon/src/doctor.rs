//! `faceswapd doctor`: every runtime dependency, what is missing, and the command that fixes it.

use std::time::Duration;

use faceswap_models::ComputeBackend;
use faceswap_protocol::{ClientKind, Connection, SocketPath};
use ffmpeg_next as ffmpeg;

use crate::assets::{ASSETS, AssetKind, locate};
use crate::paths::Dirs;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Works.
    Ok,
    /// Missing or broken, and needed.
    Fail,
    /// Missing but optional; the product works without it.
    Note,
}

/// What the backend reports of its driver and devices, after a passing probe (CUDA: driver
/// and NVRTC versions, headers, each device's name and memory).
fn backend_detail(backend: ComputeBackend) -> String {
    #[cfg(feature = "cuda")]
    if backend == ComputeBackend::Cuda
        && let Ok(rt) = faceswap_models::cuda_runtime::cuda_runtime()
    {
        let devices: Vec<String> = rt
            .devices
            .iter()
            .map(|d| {
                format!(
                    "cuda:{} {} ({:.1} GiB, sm {}.{})",
                    d.index,
                    d.name,
                    d.total_memory as f64 / (1u64 << 30) as f64,
                    d.compute_capability.0,
                    d.compute_capability.1
                )
            })
            .collect();
        return format!(
            "; driver CUDA {}.{}, NVRTC {}.{}, headers {}; {}",
            rt.driver_version.0,
            rt.driver_version.1,
            rt.nvrtc_version.0,
            rt.nvrtc_version.1,
            rt.include_dir.display(),
            devices.join(", ")
        );
    }
    let _ = backend;
    String::new()
}

/// Which device the configured `compute.device` resolves to, by the rule every job uses.
fn device_choice_check(dirs: &Dirs) -> Check {
    let what = "compute device";
    let runtime = match crate::runtime::Runtime::load(dirs.clone()) {
        Ok(rt) => rt,
        Err(e) => return check(what, Outcome::Fail, e, Some("faceswapd config show")),
    };
    let configured = match runtime.config() {
        Ok(cfg) => cfg.compute.device.clone(),
        Err(e) => return check(what, Outcome::Fail, e, Some("faceswapd config show")),
    };
    match runtime.device(None) {
        Ok(device) => check(
            what,
            Outcome::Ok,
            format!("compute.device = {configured}: jobs run on {device}"),
            None,
        ),
        Err(e) => check(
            what,
            Outcome::Fail,
            format!("compute.device: {e}"),
            Some("set compute.device = \"auto\" (or another device doctor lists as working)"),
        ),
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Result.
    pub outcome: Outcome,
    /// Detail: version found, or what is wrong.
    pub detail: String,
    /// Command that fixes it (for failures and notes).
    pub fix: Option<String>,
}

fn check(
    what: impl Into<String>,
    outcome: Outcome,
    detail: impl Into<String>,
    fix: Option<&str>,
) -> Check {
    Check {
        what: what.into(),
        outcome,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

const APT_FFMPEG: &str = "sudo apt-get install -y libavcodec59 libavformat59 libavutil57 libswscale6 (or run installers/setup.sh)";

/// Runs every check.
pub fn run(dirs: &Dirs, socket: &SocketPath) -> Vec<Check> {
    let mut out = Vec::new();
    out.extend(ffmpeg_checks());
    for (what, dir) in [
        ("data folder", dirs.data.clone()),
        ("cache folder", dirs.cache.clone()),
        ("config folder", dirs.config.clone()),
    ] {
        let probe = std::fs::create_dir_all(&dir).and_then(|_| {
            let p = dir.join(".doctor-write-test");
            std::fs::write(&p, b"ok")?;
            std::fs::remove_file(p)
        });
        out.push(match probe {
            Ok(()) => check(what, Outcome::Ok, dir.display().to_string(), None),
            Err(e) => check(
                what,
                Outcome::Fail,
                format!("{} is not writable: {e}", dir.display()),
                Some("check the folder's owner and free space (df -h)"),
            ),
        });
    }
    for asset in ASSETS.iter().filter(|a| a.applies_here()) {
        let (label, fix, required) = match asset.kind {
            AssetKind::Model => ("model asset", "faceswapd assets fetch --models", true),
            AssetKind::Runtime => ("runtime library", "faceswapd assets fetch --runtime", true),
            AssetKind::Media => ("test media", "faceswapd assets fetch --media", false),
        };
        out.push(match locate(dirs, asset.name) {
            Ok(p) => check(
                format!("{label} {}", asset.name),
                Outcome::Ok,
                p.display().to_string(),
                None,
            ),
            Err(e) => check(
                format!("{label} {}", asset.name),
                if required {
                    Outcome::Fail
                } else {
                    Outcome::Note
                },
                e.to_string(),
                Some(fix),
            ),
        });
    }
    for (_, onnx) in crate::assets::CONVERTED_MODELS {
        out.push(match crate::assets::verified_model(dirs, onnx) {
            Ok(p) => check(
                format!("converted model {onnx}"),
                Outcome::Ok,
                p.display().to_string(),
                None,
            ),
            Err(e) => check(
                format!("converted model {onnx}"),
                Outcome::Fail,
                e.to_string(),
                Some("faceswapd assets fetch --models"),
            ),
        });
    }
    out.push(onnx_check(dirs));
    for backend in ComputeBackend::ALL {
        let what = format!("compute backend {}", backend.name());
        out.push(match faceswap_models::probe(backend) {
            Ok(r) => check(
                what,
                Outcome::Ok,
                format!("test matmul ran in {:.1} ms{}", r.millis, backend_detail(backend)),
                None,
            ),
            Err(e @ faceswap_models::backend::ProbeError::NotBuilt { .. }) => check(
                what,
                Outcome::Note,
                e.to_string(),
                backend
                    .feature()
                    .map(|_| "optional: build with the GPU feature on a machine with that GPU"),
            ),
            Err(e) => check(
                what,
                if backend == ComputeBackend::Cpu { Outcome::Fail } else { Outcome::Note },
                e.to_string(),
                Some("check the GPU driver (nvidia-smi / vulkaninfo), or set compute.device = \"cpu\""),
            ),
        });
    }
    out.push(device_choice_check(dirs));
    out.push(
        match Connection::connect(socket, ClientKind::Cli, Duration::from_secs(2)) {
            Ok(c) => check(
                "daemon",
                Outcome::Ok,
                format!(
                    "running at {socket} (pid {}, v{})",
                    c.welcome().pid,
                    c.welcome().daemon_version
                ),
                None,
            ),
            Err(e) => check(
                "daemon",
                Outcome::Note,
                format!("not running at {socket} ({e}); client commands start it on demand"),
                Some("faceswapd serve   (or `faceswapd service install` to start it at login)"),
            ),
        },
    );
    if let Ok(path) = crate::service::definition_path() {
        out.push(if cfg!(windows) || path.is_file() {
            check(
                "service",
                Outcome::Ok,
                format!("{} (faceswapd service status)", path.display()),
                None,
            )
        } else {
            check(
                "service",
                Outcome::Note,
                format!(
                    "not installed ({} is missing); the daemon starts on demand instead",
                    path.display()
                ),
                Some("faceswapd service install"),
            )
        });
    }
    out
}

fn ffmpeg_checks() -> Vec<Check> {
    let mut out = Vec::new();
    match ffmpeg::init() {
        Ok(()) => {
            let v = |n: u32| format!("{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff);
            out.push(check(
                "FFmpeg libraries",
                Outcome::Ok,
                format!(
                    "libavformat {}, libavcodec {}, libavutil {}, libswscale {}",
                    v(ffmpeg::format::version()),
                    v(ffmpeg::codec::version()),
                    v(ffmpeg::util::version()),
                    v(ffmpeg::software::scaling::version())
                ),
                None,
            ));
            out.push(match ffmpeg::decoder::find(ffmpeg::codec::Id::H264) {
                Some(_) => check("FFmpeg H.264 decoder", Outcome::Ok, "present", None),
                None => check(
                    "FFmpeg H.264 decoder",
                    Outcome::Fail,
                    "missing",
                    Some(APT_FFMPEG),
                ),
            });
            out.push(match ffmpeg::encoder::find_by_name("libx264") {
                Some(_) => check("FFmpeg libx264 encoder", Outcome::Ok, "present", None),
                None => check(
                    "FFmpeg libx264 encoder",
                    Outcome::Note,
                    "missing: video output falls back to another encoder",
                    Some("sudo apt-get install -y libavcodec-extra"),
                ),
            });
        }
        Err(e) => out.push(check(
            "FFmpeg libraries",
            Outcome::Fail,
            e.to_string(),
            Some(APT_FFMPEG),
        )),
    }
    out
}

fn onnx_check(dirs: &Dirs) -> Check {
    let Ok(path) = crate::assets::onnx_runtime_library(dirs) else {
        return check(
            "ONNX Runtime",
            Outcome::Fail,
            format!(
                "no library for {} (set ORT_DYLIB_PATH or fetch it)",
                crate::assets::platform()
            ),
            Some("faceswapd assets fetch --runtime"),
        );
    };
    match faceswap_models::load_onnx_runtime(&path) {
        Ok(info) => check(
            "ONNX Runtime",
            Outcome::Ok,
            format!(
                "{} ({})",
                path.display(),
                info.lines().next().unwrap_or("").trim()
            ),
            None,
        ),
        Err(e) => check(
            "ONNX Runtime",
            Outcome::Fail,
            e.to_string(),
            Some("faceswapd assets fetch --runtime"),
        ),
    }
}

/// Formats the report; returns it and whether everything needed is there.
pub fn render(checks: &[Check]) -> (String, bool) {
    let mut s = String::new();
    let mut ok = true;
    for c in checks {
        let tag = match c.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Fail => {
                ok = false;
                "FAIL"
            }
            Outcome::Note => "note",
        };
        s.push_str(&format!("[{tag}] {}: {}\n", c.what, c.detail));
        if c.outcome != Outcome::Ok
            && let Some(fix) = &c.fix
        {
            s.push_str(&format!("       fix: {fix}\n"));
        }
    }
    s.push_str(if ok {
        "\nfaceswapd doctor: everything needed is in place.\n"
    } else {
        "\nfaceswapd doctor: something needed is missing; run the fix commands above.\n"
    });
    (s, ok)
}
