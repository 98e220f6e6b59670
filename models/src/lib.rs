//! Everything in Faceswap++ with learned weights.
//!
//! The compute backend (burn `flex` on CPU, `cuda`, `vulkan`, `wgpu`), ONNX Runtime and the pretrained
//! extractor nets it runs (MediaPipe BlazeFace and FaceMesh; optional S3FD, FAN, BiSeNet), and the
//! learned parts: swap models (SAEHD, Phaze-A), XSeg, losses, optimisers and the trainer.

/// The burn version these models are built with, for callers that build tensors.
pub use burn;

pub mod backend;
pub mod batch;
pub mod bisenet;
pub mod blazeface;
pub mod conv;
#[cfg(feature = "cuda")]
pub mod cuda_runtime;
pub mod face_model;
pub mod facemesh;
pub mod faceswap_losses;
pub mod fan;
pub mod gpu_check;
pub mod losses;
pub mod onnx;
pub mod optim;
pub mod phaze_a;
pub mod s3fd;
pub mod saehd;
pub mod ssim;
pub mod train;
pub mod weights;
pub mod xseg;

#[cfg(all(test, any(feature = "vulkan", feature = "wgpu", feature = "cuda")))]
mod gpu_smoke;

// burn's RecordState derive refers to these through `crate::`.
#[allow(unused_imports)]
use burn::optim::{RecordState, StateSink, StateSource, join_index, join_path};

pub use backend::{
    ComputeBackend, ComputeDevice, DeviceRequest, ProbeReport, compiled_backends, probe,
    select_device,
};
pub use batch::SideBatch;
pub use blazeface::{BlazeFace, BlazeFaceKind, RawDetection};
pub use face_model::{FaceModel, ModelOptions};
pub use facemesh::{FaceMesh, IBUG68_FROM_FACEMESH, MeshResult};
pub use fan::{Fan, FanResult};
pub use onnx::{OnnxModel, OnnxRuntimeError, load_onnx_runtime};
pub use phaze_a::{PhazeA, PhazeAOptions};
pub use s3fd::{S3fd, S3fdBox};
pub use saehd::{Archi, FaceOutput, ModelPart, Saehd, SaehdOptions, SwapOutput};
pub use train::{FaceTrainer, OptimizerKind, StepStats, TrainerConfig};
