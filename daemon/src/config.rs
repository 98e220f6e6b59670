//! `faceswapd.toml`: every key, its default and what it does; and where each effective value
//! came from (`faceswapd config show`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The daemon's whole configuration. Missing keys take their defaults; unknown keys are errors
/// (a typo must not be silently ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Service settings.
    pub daemon: DaemonConfig,
    /// Job queue settings.
    pub jobs: JobsConfig,
    /// Model compute settings.
    pub compute: ComputeConfig,
    /// Asset fetching.
    pub assets: AssetsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Extraction.
    pub extract: ExtractConfig,
    /// Masks.
    pub masks: MasksConfig,
}

/// `[masks]`: the optional BiSeNet-FP network `mask generate` runs besides the landmark masks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasksConfig {
    /// BiSeNet-FP ONNX file (empty = none).
    pub bisenet_model: String,
    /// Hair counts as face (the mask is stored as `bisenet-fp_head`).
    pub bisenet_hair: bool,
    /// Ears count as face.
    pub bisenet_ears: bool,
    /// Glasses count as face.
    pub bisenet_glasses: bool,
}

impl Default for MasksConfig {
    /// faceswap's bisenet-fp defaults: glasses in, ears and hair out.
    fn default() -> Self {
        MasksConfig {
            bisenet_model: String::new(),
            bisenet_hair: false,
            bisenet_ears: false,
            bisenet_glasses: true,
        }
    }
}

/// `[extract]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    /// Optional S3FD ONNX file replacing the built-in detector.
    pub s3fd_model: String,
    /// Optional FAN 2D ONNX file replacing the built-in landmarker.
    pub fan_model: String,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Most client connections at once.
    pub max_connections: u32,
    /// Milliseconds a new connection has to complete its handshake.
    pub handshake_timeout_ms: u64,
    /// Seconds an idle connection stays open.
    pub idle_timeout_s: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            max_connections: 64,
            handshake_timeout_ms: 2_000,
            idle_timeout_s: 600,
        }
    }
}

/// `[jobs]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs run at the same time.
    pub workers: u32,
    /// Log lines kept in each job record.
    pub log_tail_lines: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 1,
            log_tail_lines: 50,
        }
    }
}

/// `[compute]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// `auto`, `cpu`, or a GPU backend with an optional index: `cuda`, `cuda:1`, `vulkan:0`,
    /// `wgpu` (see `faceswap_models::DeviceRequest`).
    pub device: String,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            device: "auto".into(),
        }
    }
}

/// `[assets]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AssetsConfig {
    /// A local folder holding copies of the assets (used only when SHA-256 sums match).
    pub mirror: String,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `faceswapd=debug`.
    pub level: String,
    /// Size at which the log file is rotated, in bytes.
    pub file_max_bytes: u64,
    /// Rotated log files kept.
    pub files_kept: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            file_max_bytes: 10 * 1024 * 1024,
            files_kept: 3,
        }
    }
}

/// Documentation for each key, in file order (a test keeps it in step with the structs).
pub const KEY_DOCS: &[(&str, &str)] = &[
    (
        "daemon.max_connections",
        "most client connections served at once; more are refused as busy",
    ),
    (
        "daemon.handshake_timeout_ms",
        "time a new connection has to say hello before it is dropped",
    ),
    (
        "daemon.idle_timeout_s",
        "an idle connection is closed after this many seconds",
    ),
    (
        "jobs.workers",
        "jobs that run at the same time (training wants 1 per GPU)",
    ),
    (
        "jobs.log_tail_lines",
        "log lines kept in each job record for `faceswapd jobs show`",
    ),
    (
        "compute.device",
        "auto | cpu | cuda[:N] | vulkan[:N] | wgpu[:N]: where models run (auto = the best built-in GPU that works, CUDA > Vulkan > wgpu, else cpu; software GPUs are skipped); jobs can override it with --device",
    ),
    (
        "assets.mirror",
        "folder with local copies of assets, used only when their SHA-256 matches (empty = none)",
    ),
    (
        "log.level",
        "tracing filter for the daemon log, e.g. info, debug, faceswapd=trace",
    ),
    (
        "log.file_max_bytes",
        "the log file in <data>/logs is rotated at this size",
    ),
    (
        "log.files_kept",
        "rotated log files kept beside the current one",
    ),
    (
        "extract.s3fd_model",
        "S3FD detector ONNX replacing BlazeFace (empty = built-in): input [1,3,640,640] BGR minus (104,117,123); outputs (class [1,2,h,w], box [1,4,h,w]) for strides 4..128; e.g. an export of face-alignment's SFD",
    ),
    (
        "extract.fan_model",
        "FAN 2D landmarker ONNX replacing FaceMesh (empty = built-in): input [1,3,256,256] RGB 0..1; output heatmaps [1,68,64,64]; e.g. an export of face-alignment's 2DFAN-4",
    ),
    (
        "masks.bisenet_model",
        "BiSeNet-FP ONNX that `mask generate` also runs (empty = none; --bisenet overrides): input [1,3,512,512] RGB normalised as faceswap; output logits [1,5|19,512,512] (faceswap's 5-class or the original 19-class weights)",
    ),
    (
        "masks.bisenet_hair",
        "BiSeNet-FP: hair counts as face (stored as bisenet-fp_head, else bisenet-fp_face)",
    ),
    ("masks.bisenet_ears", "BiSeNet-FP: ears count as face"),
    (
        "masks.bisenet_glasses",
        "BiSeNet-FP: glasses count as face (faceswap's default)",
    ),
];

/// The config file could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error(
        "config file {path} is invalid: {message} (see `faceswapd config default` for every key)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Parser message (names the key and line).
        message: String,
    },
}

/// A loaded config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Effective values.
    pub config: Config,
    /// The file consulted.
    pub path: PathBuf,
    /// The file's own table, when it exists (to tell file values from defaults).
    pub file_table: Option<toml::Table>,
}

impl LoadedConfig {
    /// Loads `path`; a missing file means all defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LoadedConfig {
                    config: Config::default(),
                    path: path.to_path_buf(),
                    file_table: None,
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let config: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(LoadedConfig {
            config,
            path: path.to_path_buf(),
            file_table: Some(table),
        })
    }

    /// The effective config as commented TOML: each key with its value, its source and its doc.
    pub fn show(&self) -> String {
        let values = flatten(&self.config);
        let mut out = format!(
            "# effective faceswapd configuration\n# file: {} ({})\n",
            self.path.display(),
            if self.file_table.is_some() {
                "loaded"
            } else {
                "not present: all defaults"
            }
        );
        let mut section = "";
        for (key, doc) in KEY_DOCS {
            let (sec, name) = key.split_once('.').unwrap_or(("", key));
            if sec != section {
                out.push_str(&format!("\n[{sec}]\n"));
                section = sec;
            }
            let from_file = self
                .file_table
                .as_ref()
                .and_then(|t| t.get(sec))
                .and_then(|s| s.get(name))
                .is_some();
            let source = if from_file {
                format!("from {}", self.path.display())
            } else {
                "default".into()
            };
            let value = values
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            out.push_str(&format!("{name} = {value}  # {source}: {doc}\n"));
        }
        out
    }
}

/// The error for a device spelling that names no device, listing the ones there are.
pub fn unknown_device(device: &str) -> String {
    format!(
        "device {device:?}: use {}",
        faceswap_models::DeviceRequest::spellings()
    )
}

/// Parses a device spelling (`auto`, `cpu`, `cuda:1`…) from the config, the CLI or a job.
pub fn device_request(device: &str) -> Result<faceswap_models::DeviceRequest, String> {
    faceswap_models::DeviceRequest::parse(device).ok_or_else(|| unknown_device(device))
}

impl Config {
    /// Checks values the types alone do not constrain.
    pub fn validate(&self) -> Result<(), String> {
        device_request(&self.compute.device).map_err(|e| format!("compute.device: {e}"))?;
        if self.jobs.workers == 0 {
            return Err("jobs.workers must be at least 1".into());
        }
        if self.daemon.max_connections == 0 {
            return Err("daemon.max_connections must be at least 1".into());
        }
        Ok(())
    }

    /// The documented default file (`faceswapd config default`).
    pub fn default_toml() -> String {
        LoadedConfig {
            config: Config::default(),
            path: PathBuf::from("(defaults)"),
            file_table: None,
        }
        .show()
    }
}

/// `(section.key, value)` for every leaf of the config.
fn flatten(c: &Config) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(c) {
        for (sec, v) in t {
            if let toml::Value::Table(inner) = v {
                for (k, v) in inner {
                    out.push((format!("{sec}.{k}"), v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented_and_every_doc_is_a_key() {
        let mut keys: Vec<String> = flatten(&Config::default())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut docs: Vec<String> = KEY_DOCS.iter().map(|(k, _)| k.to_string()).collect();
        keys.sort();
        docs.sort();
        assert_eq!(keys, docs);
    }

    #[test]
    fn default_toml_parses_back_to_defaults() {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn show_marks_file_values_and_bad_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("faceswapd.toml");
        std::fs::write(&p, "[jobs]\nworkers = 2\n").unwrap();
        let loaded = LoadedConfig::load(&p).unwrap();
        assert_eq!(loaded.config.jobs.workers, 2);
        let shown = loaded.show();
        assert!(
            shown.contains(&format!("workers = 2  # from {}", p.display())),
            "{shown}"
        );
        assert!(shown.contains("log_tail_lines = 50  # default"), "{shown}");

        std::fs::write(&p, "[jobs]\nworkerz = 2\n").unwrap();
        let err = LoadedConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("workerz"), "{err}");
        std::fs::write(&p, "[compute]\ndevice = \"tpu\"\n").unwrap();
        let err = LoadedConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("compute.device"), "{err}");
    }
}
