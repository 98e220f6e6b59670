//! Crash-safe file writes: temp file in the same folder, fsync, rename, fsync the folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prefix of temp files, so stale ones left by a crash can be recognised and removed.
pub const TEMP_PREFIX: &str = ".fspp-tmp-";

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        "{TEMP_PREFIX}{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    path.with_file_name(unique)
}

/// Replaces `path` with `bytes` so that a crash at any instant leaves either the old file or the
/// new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Copies `src` to `dst` atomically (same guarantees as [`write_atomic`]).
pub fn copy_atomic(src: &Path, dst: &Path) -> std::io::Result<()> {
    let tmp = temp_path(dst);
    let result = (|| {
        std::fs::copy(src, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dst)?;
        sync_dir(dst)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Sets a damaged file aside: renames `path` to `<name>.corrupt` (or `<name>.corrupt.N` when
/// that is taken, so an earlier one is never replaced) and returns the new path. Never deletes.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut aside = path.with_file_name(format!("{name}.corrupt"));
    let mut n = 1;
    while aside.exists() {
        aside = path.with_file_name(format!("{name}.corrupt.{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    sync_dir(path)?;
    Ok(aside)
}

/// Removes temp files that a crash left in `dir`; returns how many.
pub fn remove_stale_temps(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            std::fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_aside_twice_keeps_both_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("project.toml");
        std::fs::write(&p, "first").unwrap();
        let a = set_aside(&p).unwrap();
        std::fs::write(&p, "second").unwrap();
        let b = set_aside(&p).unwrap();
        assert_eq!(a, dir.path().join("project.toml.corrupt"));
        assert_eq!(b, dir.path().join("project.toml.corrupt.1"));
        assert_eq!(std::fs::read_to_string(a).unwrap(), "first");
        assert_eq!(std::fs::read_to_string(b).unwrap(), "second");
        assert!(!p.exists());
    }

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(dir.path().join(format!("{TEMP_PREFIX}9-9-a.toml")), b"x").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
    }

    #[test]
    fn failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("a");
        assert!(write_atomic(&p, b"x").is_err());
    }
}
