//! Compute backends: which ones this build has, and whether each one actually runs here.

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use thiserror::Error;

/// A burn backend the models can run on; chosen at run time from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The burn device, when this build has the backend.
    pub fn device(self) -> Option<Device> {
        match self {
            ComputeBackend::Cpu => Some(Device::flex()),
            #[cfg(feature = "cuda")]
            ComputeBackend::Cuda => Some(Device::cuda(0)),
            #[cfg(feature = "vulkan")]
            ComputeBackend::Vulkan => Some(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "wgpu")]
            ComputeBackend::Wgpu => Some(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            _ => None,
        }
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
    /// The backend.
    pub backend: ComputeBackend,
    /// Wall time for device start-up plus a 64×64 matmul, in milliseconds.
    pub millis: f64,
}

/// Runs a 64×64 matmul on `backend` and checks the result; GPU start-up failures (which panic
/// inside some backends) are caught and reported. A wgpu backend whose only adapters are
/// software ones is refused before anything runs on it: lavapipe trains SAEHD far slower than
/// the `cpu` backend does.
pub fn probe(backend: ComputeBackend) -> Result<ProbeReport, ProbeError> {
    if backend.device().is_some()
        && let Some(adapter) = software_only(backend)
    {
        return Err(ProbeError::SoftwareAdapter {
            backend: backend.name(),
            adapter,
        });
    }
    probe_device(backend)
}

/// [`probe`] without the software-adapter check (the GPU smoke test runs on lavapipe too).
pub(crate) fn probe_device(backend: ComputeBackend) -> Result<ProbeReport, ProbeError> {
    let device = backend.device().ok_or(ProbeError::NotBuilt {
        backend: backend.name(),
        feature: backend.feature().unwrap_or("default"),
    })?;
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
            backend,
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
    fn names_round_trip() {
        for b in ComputeBackend::ALL {
            assert_eq!(ComputeBackend::parse(b.name()), Some(b));
        }
        assert_eq!(ComputeBackend::parse("tpu"), None);
    }
}
