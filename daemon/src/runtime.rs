//! What `serve` builds once and every job and live render shares: the daemon's folders, its
//! config (read again only when the file changes), and the one rule that picks a compute device.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use faceswap_models::{ComputeDevice, select_device};

use crate::config::{Config, LoadedConfig, device_request};
use crate::paths::Dirs;

/// When and how big the config file was when read (`None`: there was no file).
type FileStamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

struct Snapshot {
    config: Arc<Config>,
    stamp: FileStamp,
}

/// The daemon's shared state for work: folders, config, device rule.
pub struct Runtime {
    dirs: Dirs,
    snapshot: Mutex<Snapshot>,
}

impl Runtime {
    /// A runtime over `dirs` with `config` as read from `dirs.config_file()` just now.
    pub fn new(dirs: Dirs, config: Config) -> Arc<Runtime> {
        let stamp = stamp(&dirs.config_file());
        Arc::new(Runtime {
            dirs,
            snapshot: Mutex::new(Snapshot {
                config: Arc::new(config),
                stamp,
            }),
        })
    }

    /// Loads the config file of `dirs` (work outside the daemon: the CLI's own commands).
    pub fn load(dirs: Dirs) -> Result<Arc<Runtime>, String> {
        let loaded = LoadedConfig::load(&dirs.config_file()).map_err(|e| e.to_string())?;
        Ok(Runtime::new(dirs, loaded.config))
    }

    /// The folders.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // The snapshot is replaced whole; a panic elsewhere cannot leave half of one.
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The config now: the file is read again only when its time or size changed since. A
    /// changed file that no longer reads is an error naming it (the old values are not used
    /// silently: the user meant to change something).
    pub fn config(&self) -> Result<Arc<Config>, String> {
        let path = self.dirs.config_file();
        let now = stamp(&path);
        let mut snap = self.lock();
        if now != snap.stamp {
            let loaded = LoadedConfig::load(&path).map_err(|e| {
                format!("{e}; fix the file (`faceswapd config show` lists every key)")
            })?;
            tracing::info!("{} changed: using its new values", path.display());
            snap.config = Arc::new(loaded.config);
            snap.stamp = now;
        }
        Ok(Arc::clone(&snap.config))
    }

    /// The one device rule: the device `requested` names (a job's or render's `--device`),
    /// else the config's `compute.device`; a device that cannot be used is an error naming it.
    pub fn device(&self, requested: Option<&str>) -> Result<ComputeDevice, String> {
        let spelling = match requested {
            Some(d) => d.to_string(),
            None => self.config()?.compute.device.clone(),
        };
        let request = device_request(&spelling)?;
        select_device(request).map_err(|e| format!("device {spelling}: {e}"))
    }

    /// The device the plug-in's renders use when they name none: [`Self::device`]'s choice,
    /// or the cpu with the reason when that cannot be used (a render then runs, slower,
    /// rather than fail; `faceswapd status` says why).
    pub fn render_device(&self) -> (ComputeDevice, Option<String>) {
        match self.device(None) {
            Ok(device) => (device, None),
            Err(why) => {
                tracing::warn!("{why}; the plug-in's renders use the cpu");
                (ComputeDevice::CPU, Some(why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_with(config_text: Option<&str>) -> (tempfile::TempDir, Arc<Runtime>) {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            data: root.path().join("data"),
            cache: root.path().join("cache"),
            config: root.path().join("config"),
        };
        if let Some(text) = config_text {
            std::fs::create_dir_all(&dirs.config).unwrap();
            std::fs::write(dirs.config_file(), text).unwrap();
        }
        let rt = Runtime::load(dirs).unwrap();
        (root, rt)
    }

    #[test]
    fn a_job_and_a_live_render_get_the_same_device_from_the_same_config() {
        for device in ["cpu", "auto"] {
            let (_root, rt) = runtime_with(Some(&format!("[compute]\ndevice = \"{device}\"\n")));
            let job = rt.device(None).unwrap();
            let (render, why) = rt.render_device();
            assert_eq!((job, why), (render, None), "compute.device = {device}");
        }
        // A configured device that cannot be used: the job is refused with the reason, the
        // render runs on the cpu and carries the same reason.
        let (_root, rt) = runtime_with(Some("[compute]\ndevice = \"cuda:7\"\n"));
        if let Err(job) = rt.device(None) {
            let (render, why) = rt.render_device();
            assert_eq!((render, why), (ComputeDevice::CPU, Some(job)));
        }
    }

    #[test]
    fn the_config_is_read_again_only_when_its_file_changes() {
        let (_root, rt) = runtime_with(Some("[compute]\ndevice = \"cpu\"\n"));
        let first = rt.config().unwrap();
        assert!(
            Arc::ptr_eq(&first, &rt.config().unwrap()),
            "unchanged file, same snapshot"
        );
        let file = rt.dirs().config_file();
        std::fs::write(&file, "[compute]\ndevice = \"auto\"\n# longer now\n").unwrap();
        assert_eq!(rt.config().unwrap().compute.device, "auto");
        std::fs::write(
            &file,
            "[compute]\ndevice = 3\n# broken, and longer than before\n",
        )
        .unwrap();
        let e = rt.config().unwrap_err();
        assert!(
            e.contains("faceswapd.toml") && e.contains("fix the file"),
            "{e}"
        );
    }
}
