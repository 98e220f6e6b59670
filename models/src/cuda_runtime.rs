//! What the `cuda` backend loads at run time — the NVIDIA driver (libcuda), NVRTC (which
//! compiles burn's kernels from CUDA C++) and the CUDA headers those kernels include — and
//! whether this machine has them. Asked before anything runs on the backend: cudarc and cubecl
//! panic on a missing library or header, and a probe should name it instead.

use std::path::{Path, PathBuf};

use cudarc::driver::{result as driver, sys as driver_sys};
use thiserror::Error;

/// A header every kernel with half-precision values includes; its folder is the include path.
const PROBE_HEADER: &str = "cuda_fp16.h";

/// One CUDA device as the driver describes it.
#[derive(Debug, Clone)]
pub struct CudaDeviceInfo {
    /// The CUDA ordinal (`cuda:N`).
    pub index: usize,
    /// The driver's name for it (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Device memory in bytes.
    pub total_memory: u64,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
}

/// The CUDA run-time pieces found on this machine.
#[derive(Debug, Clone)]
pub struct CudaRuntime {
    /// The driver's CUDA version (major, minor): the newest CUDA it runs.
    pub driver_version: (i32, i32),
    /// NVRTC's version (major, minor).
    pub nvrtc_version: (i32, i32),
    /// The folder holding the CUDA headers NVRTC is given (`<CUDA_PATH>/include`).
    pub include_dir: PathBuf,
    /// Every device the driver lists.
    pub devices: Vec<CudaDeviceInfo>,
}

/// A piece the `cuda` backend needs that this machine lacks, with what to do about it.
#[derive(Debug, Error)]
pub enum CudaMissing {
    /// libcuda is not found.
    #[error(
        "the NVIDIA driver library (libcuda.so) is not found: install the NVIDIA driver (`nvidia-smi` should list the GPU), or add the folder holding libcuda.so.1 to LD_LIBRARY_PATH"
    )]
    Driver,
    /// libcuda loads but does not start.
    #[error(
        "the NVIDIA driver did not start ({0}): check that `nvidia-smi` sees the GPU as this user"
    )]
    DriverStart(String),
    /// The driver lists no device at that ordinal.
    #[error("no CUDA device {index}: the driver lists {count}")]
    NoDevice {
        /// The ordinal asked for.
        index: usize,
        /// How many the driver lists.
        count: usize,
    },
    /// libnvrtc is not found.
    #[error(
        "NVRTC (libnvrtc.so), which compiles the CUDA kernels, is not found: install the CUDA toolkit's NVRTC (Debian/Ubuntu `cuda-nvrtc-13-0`, or `pip install nvidia-cuda-nvrtc`) and add its lib folder to LD_LIBRARY_PATH"
    )]
    Nvrtc,
    /// The CUDA headers are not found.
    #[error(
        "the CUDA headers ({PROBE_HEADER}) are not in {searched}: install the CUDA toolkit's headers (Debian/Ubuntu `cuda-cudart-dev-13-0`, or `pip install nvidia-cuda-runtime`) and set CUDA_PATH to the folder whose include/ holds them"
    )]
    Headers {
        /// Where they were looked for.
        searched: String,
    },
}

/// Looks for the driver, NVRTC and the headers, and lists the devices.
pub fn cuda_runtime() -> Result<CudaRuntime, CudaMissing> {
    // SAFETY: only asks whether a library of that name can be opened.
    if !unsafe { driver_sys::is_culib_present() } {
        return Err(CudaMissing::Driver);
    }
    driver::init().map_err(|e| CudaMissing::DriverStart(e.to_string()))?;
    let mut version = 0;
    // SAFETY: writes one int; the driver is initialised.
    unsafe { driver_sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| CudaMissing::DriverStart(e.to_string()))?;
    let count = driver::device::get_count().map_err(|e| CudaMissing::DriverStart(e.to_string()))?;
    let devices = (0..count)
        .map(device_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CudaMissing::DriverStart(e.to_string()))?;
    // SAFETY: only asks whether a library of that name can be opened.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaMissing::Nvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: writes two ints; the library is present.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|_| CudaMissing::Nvrtc)?;
    Ok(CudaRuntime {
        driver_version: (version / 1000, (version % 1000) / 10),
        nvrtc_version: (major, minor),
        include_dir: include_dir()?,
        devices,
    })
}

/// [`cuda_runtime`], and device `index` among its devices.
pub fn check_device(index: usize) -> Result<CudaDeviceInfo, CudaMissing> {
    let runtime = cuda_runtime()?;
    let count = runtime.devices.len();
    runtime
        .devices
        .into_iter()
        .nth(index)
        .ok_or(CudaMissing::NoDevice { index, count })
}

/// The include folder cubecl hands NVRTC (`$CUDA_PATH`, else the usual install folders), when
/// it holds the headers.
fn include_dir() -> Result<PathBuf, CudaMissing> {
    let Some(root) = cubecl_cuda::install::cuda_path() else {
        return Err(CudaMissing::Headers {
            searched: "CUDA_PATH (unset), /usr/local/cuda, /opt/cuda or /usr".into(),
        });
    };
    let include = root.join("include");
    if has_headers(&include) {
        Ok(include)
    } else {
        Err(CudaMissing::Headers {
            searched: include.display().to_string(),
        })
    }
}

fn has_headers(include: &Path) -> bool {
    include.join(PROBE_HEADER).is_file()
}

fn device_info(ordinal: i32) -> Result<CudaDeviceInfo, cudarc::driver::DriverError> {
    use driver_sys::CUdevice_attribute as Attr;
    let dev = driver::device::get(ordinal)?;
    // SAFETY: `dev` came from `device::get`.
    let (total_memory, major, minor) = unsafe {
        (
            driver::device::total_mem(dev)?,
            driver::device::get_attribute(dev, Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            driver::device::get_attribute(dev, Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        )
    };
    Ok(CudaDeviceInfo {
        index: ordinal as usize,
        name: driver::device::get_name(dev)?,
        total_memory: total_memory as u64,
        compute_capability: (major, minor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_without_the_driver_gets_the_missing_piece_named() {
        // Dev machines and CI have no NVIDIA driver; a GPU machine has every piece.
        match cuda_runtime() {
            Ok(runtime) => assert!(!runtime.devices.is_empty()),
            Err(missing) => {
                let text = missing.to_string();
                assert!(
                    text.contains("install") || text.contains("nvidia-smi"),
                    "{text}"
                );
                let probe = crate::probe(crate::ComputeBackend::Cuda).unwrap_err();
                assert!(probe.to_string().contains(&text), "{probe}");
            }
        }
    }
}
