//! Everything in Faceswap++ with learned weights.
//!
//! Today: choosing and probing the compute backend (burn `flex` on CPU, `cuda`, `vulkan`) and
//! loading the ONNX Runtime library that runs the pretrained extractor nets. The swap networks,
//! losses, optimisers and checkpoints arrive with the training engine and plug in here.

pub mod backend;
pub mod onnx;

pub use backend::{ComputeBackend, ProbeReport, compiled_backends, probe};
pub use onnx::{OnnxRuntimeError, load_onnx_runtime};
