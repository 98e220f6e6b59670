//! Compute backends: which ones this build has, and whether each one actually runs here.

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use thiserror::Error;

/// A burn backend the models can run on; chosen at run time from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputeBackend {
    /// burn `flex` on the CPU: always built, what tests and CI use.
    Cpu,
    /// NVIDIA GPU through burn-cuda (`--features cuda`).
    Cuda,
    /// Any Vulkan GPU through burn's wgpu backend, SPIR-V kernels (`--features vulkan`).
    Vulkan,
    /// Any GPU wgpu reaches — Vulkan, Metal, DirectX 12 — with WGSL kernels (`--features wgpu`).
    Wgpu,
}

impl ComputeBackend {
    /// Every backend, CPU first, then the GPUs in the order `auto` tries them.
    pub const ALL: [ComputeBackend; 4] = [
        ComputeBackend::Cpu,
        ComputeBackend::Cuda,
        ComputeBackend::Vulkan,
        ComputeBackend::Wgpu,
    ];

    /// Config spelling (`compute.device`).
    pub fn name(self) -> &'static str {
        match self {
            ComputeBackend::Cpu => "cpu",
            ComputeBackend::Cuda => "cuda",
            ComputeBackend::Vulkan => "vulkan",
            ComputeBackend::Wgpu => "wgpu",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cpu" => ComputeBackend::Cpu,
            "cuda" => ComputeBackend::Cuda,
            "vulkan" => ComputeBackend::Vulkan,
            "wgpu" => ComputeBackend::Wgpu,
            _ => return None,
        })
    }

    /// The cargo feature that builds this backend in.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            ComputeBackend::Cpu => None,
            ComputeBackend::Cuda => Some("cuda"),
            ComputeBackend::Vulkan => Some("vulkan"),
            ComputeBackend::Wgpu => Some("wgpu"),
        }
    }

    /// The burn device of the backend's default device, when this build has the backend.
    pub fn device(self) -> Option<Device> {
        ComputeDevice::new(self, None).device()
    }
}

/// One device of one backend: what `compute.device`, `--device` and the plug-in name, and what
/// a job reports it ran on. Spelled `cpu`, `cuda`, `cuda:1`, `vulkan:0`…
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ComputeDevice {
    /// The backend.
    pub backend: ComputeBackend,
    /// Which of the backend's devices: the CUDA ordinal, or for Vulkan / wgpu the index among
    /// discrete GPUs; `None` is the backend's default (CUDA device 0, the adapter wgpu prefers).
    pub index: Option<usize>,
}

impl ComputeDevice {
    /// The CPU (burn `flex`).
    pub const CPU: ComputeDevice = ComputeDevice {
        backend: ComputeBackend::Cpu,
        index: None,
    };

    /// A backend's device `index` (`None`: its default one).
    pub fn new(backend: ComputeBackend, index: Option<usize>) -> Self {
        // The CPU backend has one device: `cpu:0` and `cpu` are the same.
        let index = if backend == ComputeBackend::Cpu {
            None
        } else {
            index
        };
        ComputeDevice { backend, index }
    }

    /// Parses `backend` or `backend:index` (`cuda:1`); `None` for anything else (`auto`
    /// included: see [`DeviceRequest::parse`]).
    pub fn parse(s: &str) -> Option<Self> {
        let (name, index) = match s.split_once(':') {
            Some((name, index)) => (name, Some(index.parse::<usize>().ok()?)),
            None => (s, None),
        };
        let backend = ComputeBackend::parse(name)?;
        if backend == ComputeBackend::Cpu && index.is_some_and(|i| i > 0) {
            return None;
        }
        Some(ComputeDevice::new(backend, index))
    }

    /// The burn device, when this build has the backend.
    pub fn device(self) -> Option<Device> {
        #[cfg(any(feature = "vulkan", feature = "wgpu"))]
        let kind = match self.index {
            None => burn::tensor::DeviceKind::DefaultDevice,
            Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
        };
        match self.backend {
            ComputeBackend::Cpu => Some(Device::flex()),
            #[cfg(feature = "cuda")]
            ComputeBackend::Cuda => Some(Device::cuda(self.index.unwrap_or(0))),
            #[cfg(feature = "vulkan")]
            ComputeBackend::Vulkan => Some(Device::vulkan(kind)),
            #[cfg(feature = "wgpu")]
            ComputeBackend::Wgpu => Some(Device::wgpu(kind)),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

impl From<ComputeBackend> for ComputeDevice {
    fn from(backend: ComputeBackend) -> Self {
        ComputeDevice::new(backend, None)
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.backend.name()),
            None => f.write_str(self.backend.name()),
        }
    }
}

/// The device a user asked for: `auto` or one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// The best device that works here: CUDA, then Vulkan, then wgpu (never a software GPU),
    /// else the CPU.
    Auto,
    /// This device, or an error saying why it cannot be used.
    Exact(ComputeDevice),
}

impl DeviceRequest {
    /// Parses `auto` or a [`ComputeDevice`] spelling.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "auto" {
            return Some(DeviceRequest::Auto);
        }
        ComputeDevice::parse(s).map(DeviceRequest::Exact)
    }

    /// The spellings this accepts, for error messages: `auto, cpu, cuda[:N], …`.
    pub fn spellings() -> String {
        let mut names = vec!["auto".to_string()];
        names.extend(ComputeBackend::ALL.iter().map(|b| match b {
            ComputeBackend::Cpu => b.name().to_string(),
            _ => format!("{}[:N]", b.name()),
        }));
        names.join(", ")
    }
}

/// The one rule that turns a request into the device work runs on (training, XSeg, convert and
/// the plug-in's renders all ask it). `Auto` takes the first GPU backend built in whose probe
/// passes, in [`ComputeBackend::ALL`]'s order, else the CPU; `Exact` probes that device and
/// hands it back, or the probe's error: never a silent fallback to another device.
pub fn select_device(request: DeviceRequest) -> Result<ComputeDevice, ProbeError> {
    match request {
        DeviceRequest::Exact(device) => probe(device).map(|report| report.device),
        DeviceRequest::Auto => Ok(compiled_backends()
            .into_iter()
            .filter(|b| *b != ComputeBackend::Cpu)
            .map(ComputeDevice::from)
            .find(|d| probe(*d).is_ok())
            .unwrap_or(ComputeDevice::CPU)),
    }
}

/// Backends compiled into this binary, CPU first.
pub fn compiled_backends() -> Vec<ComputeBackend> {
    ComputeBackend::ALL
        .into_iter()
        .filter(|b| b.device().is_some())
        .collect()
}

/// Why a backend cannot be used.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// This binary was built without the backend.
    #[error("{backend} support is not built in (rebuild with `--features {feature}`)")]
    NotBuilt {
        /// Backend name.
        backend: &'static str,
        /// Feature that enables it.
        feature: &'static str,
    },
    /// The only adapter the backend finds is a CPU emulating a GPU (Mesa's lavapipe or
    /// llvmpipe, SwiftShader): far slower than the `cpu` backend, so it is not used.
    #[error(
        "{backend} finds only {adapter}, a software GPU emulated on the CPU (slower than the cpu backend); install the GPU's driver, or use compute.device = \"cpu\""
    )]
    SoftwareAdapter {
        /// Backend name.
        backend: &'static str,
        /// The adapter wgpu reports.
        adapter: String,
    },
    /// The backend is built in, but a library or device it needs is missing here.
    #[error("{backend} cannot run here: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// What is missing, and what to do.
        reason: String,
    },
    /// The backend is built in but failed to run a tensor operation (no driver, no device…).
    #[error("{backend} backend failed to run a test operation: {reason}")]
    Failed {
        /// Backend name.
        backend: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// What a successful probe measured.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The device.
    pub device: ComputeDevice,
    /// Wall time for device start-up plus a 64×64 matmul, in milliseconds.
    pub millis: f64,
}

/// Runs a 64×64 matmul on `device` and checks the result; GPU start-up failures (which panic
/// inside some backends) are caught and reported. A wgpu backend whose only adapters are
/// software ones is refused before anything runs on it: lavapipe trains SAEHD far slower than
/// the `cpu` backend does. CUDA's run-time pieces (driver, NVRTC, headers) are looked for first,
/// so a missing one is named instead of panicking inside the backend.
pub fn probe(device: impl Into<ComputeDevice>) -> Result<ProbeReport, ProbeError> {
    let device = device.into();
    let backend = device.backend;
    if backend.device().is_some()
        && let Some(adapter) = software_only(backend)
    {
        return Err(ProbeError::SoftwareAdapter {
            backend: backend.name(),
            adapter,
        });
    }
    probe_device(device)
}

/// [`probe`] without the software-adapter check: the GPU smoke test and `faceswapd gpu-check
/// --software` run on lavapipe too, to check the code path without a GPU.
pub fn probe_device(device: impl Into<ComputeDevice>) -> Result<ProbeReport, ProbeError> {
    let compute = device.into();
    let backend = compute.backend;
    let device = compute.device().ok_or(ProbeError::NotBuilt {
        backend: backend.name(),
        feature: backend.feature().unwrap_or("default"),
    })?;
    #[cfg(feature = "cuda")]
    if backend == ComputeBackend::Cuda {
        crate::cuda_runtime::check_device(compute.index.unwrap_or(0)).map_err(|missing| {
            ProbeError::Unavailable {
                backend: backend.name(),
                reason: missing.to_string(),
            }
        })?;
    }
    let start = Instant::now();
    let run = std::panic::catch_unwind(move || {
        // [64, 64] of ones: every entry of ones·ones is 64.
        let a = Tensor::<2>::ones([64, 64], &device);
        let total: f32 = a.clone().matmul(a).sum().into_scalar();
        total
    });
    let failed = |reason: String| ProbeError::Failed {
        backend: backend.name(),
        reason,
    };
    match run {
        Ok(total) if (total - 64.0 * 64.0 * 64.0).abs() < 1.0 => Ok(ProbeReport {
            device: compute,
            millis: start.elapsed().as_secs_f64() * 1e3,
        }),
        Ok(total) => Err(failed(format!("matmul gave {total}, expected 262144"))),
        Err(panic) => Err(failed(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the backend panicked".into()),
        )),
    }
}

/// The adapter's name when every adapter the backend's graphics APIs list is a CPU one
/// (`None` for real hardware, no adapter at all, or a backend without wgpu).
pub fn software_only(backend: ComputeBackend) -> Option<String> {
    #[cfg(any(feature = "vulkan", feature = "wgpu"))]
    {
        use burn::tensor::wgpu::wgpu;
        let apis = match backend {
            ComputeBackend::Vulkan => wgpu::Backends::VULKAN,
            ComputeBackend::Wgpu => wgpu::Backends::PRIMARY,
            ComputeBackend::Cpu | ComputeBackend::Cuda => return None,
        };
        // Asked once per backend and process (each job's device choice probes): the Vulkan
        // loader crashes when instances come and go on several threads at once (cubecl keeps
        // its own for that reason), so ours is made once, under this lock.
        static KNOWN: std::sync::Mutex<Vec<(ComputeBackend, Option<String>)>> =
            std::sync::Mutex::new(Vec::new());
        let mut known = KNOWN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, answer)) = known.iter().find(|(b, _)| *b == backend) {
            return answer.clone();
        }
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: apis,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters: Vec<_> = futures_lite::future::block_on(instance.enumerate_adapters(apis))
            .iter()
            .map(wgpu::Adapter::get_info)
            .collect();
        let software = !adapters.is_empty()
            && adapters
                .iter()
                .all(|a| a.device_type == wgpu::DeviceType::Cpu);
        let answer = software.then(|| adapters[0].name.clone());
        known.push((backend, answer.clone()));
        answer
    }
    #[cfg(not(any(feature = "vulkan", feature = "wgpu")))]
    {
        let _ = backend;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backend_is_built_and_runs() {
        assert_eq!(compiled_backends()[0], ComputeBackend::Cpu);
        let report = probe(ComputeBackend::Cpu).unwrap();
        assert!(report.millis >= 0.0);
    }

    #[test]
    fn device_spellings_parse_and_print_back() {
        for spelling in ["cpu", "cuda", "cuda:1", "vulkan:0", "wgpu:2"] {
            let device = ComputeDevice::parse(spelling).unwrap();
            assert_eq!(device.to_string(), spelling);
            assert_eq!(
                DeviceRequest::parse(spelling),
                Some(DeviceRequest::Exact(device))
            );
        }
        assert_eq!(ComputeDevice::parse("cpu:0"), Some(ComputeDevice::CPU));
        for bad in ["cpu:1", "cuda:", "cuda:-1", "cuda:x", "gpu", "auto", ""] {
            assert_eq!(ComputeDevice::parse(bad), None, "{bad}");
        }
        assert_eq!(DeviceRequest::parse("auto"), Some(DeviceRequest::Auto));
        assert_eq!(
            DeviceRequest::spellings(),
            "auto, cpu, cuda[:N], vulkan[:N], wgpu[:N]"
        );
    }

    #[test]
    fn selection_is_the_best_working_device_or_the_named_one() {
        // A CPU-only build: auto is the CPU; a named GPU is an error naming its feature.
        let auto = select_device(DeviceRequest::Auto).unwrap();
        if compiled_backends() == [ComputeBackend::Cpu] {
            assert_eq!(auto, ComputeDevice::CPU);
        }
        assert_eq!(
            select_device(DeviceRequest::Exact(ComputeDevice::CPU)).unwrap(),
            ComputeDevice::CPU
        );
        for backend in ComputeBackend::ALL {
            if backend.device().is_none() {
                let err = select_device(DeviceRequest::Exact(backend.into())).unwrap_err();
                assert!(
                    matches!(err, ProbeError::NotBuilt { .. }),
                    "{backend:?}: {err}"
                );
                assert!(err.to_string().contains("--features"), "{err}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for b in ComputeBackend::ALL {
            assert_eq!(ComputeBackend::parse(b.name()), Some(b));
        }
        assert_eq!(ComputeBackend::parse("tpu"), None);
    }
}
