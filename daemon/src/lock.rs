//! One daemon per user: an exclusive lock on a file beside the socket, holding the owner's pid.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// Why the lock could not be taken.
#[derive(Debug, Error)]
pub enum LockError {
    /// Another daemon holds it.
    #[error("already running ({}); `faceswapd status` talks to it", holder_text(.pid, .path))]
    AlreadyRunning {
        /// The holder's pid as it wrote it; `None` when the lock file does not hold one.
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened or written.
    #[error("cannot use the lock file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Held for the daemon's lifetime; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock at `path` or reports who holds it.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut s = String::new();
                // An unreadable pid is reported as unknown, never as a made-up one.
                let pid = file
                    .read_to_string(&mut s)
                    .ok()
                    .and_then(|_| s.trim().parse().ok());
                return Err(LockError::AlreadyRunning {
                    pid,
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(InstanceLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn holder_text(pid: &Option<u32>, path: &Path) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => format!(
            "pid unknown: the lock file {} holds no readable pid",
            path.display()
        ),
    }
}

/// Blocks until no process holds the lock at `path` (the daemon that held it has exited), or
/// `timeout` passes; true when released. A missing lock file counts as released.
pub fn wait_released(path: &Path, timeout: Duration) -> Result<bool, LockError> {
    let file = match OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(source) => {
            return Err(LockError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // A blocking lock wakes on the holder's exit; the thread is left behind on a timeout.
    std::thread::spawn(move || {
        let _ = tx.send(file.lock().map(|()| drop(file)));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(true),
        Ok(Err(source)) => Err(LockError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_sees_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("faceswapd.lock");
        let first = InstanceLock::acquire(&p).unwrap();
        match InstanceLock::acquire(&p) {
            Err(LockError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()))
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        assert!(!wait_released(&p, Duration::from_millis(50)).unwrap());
        let waiter = std::thread::spawn({
            let p = p.clone();
            move || wait_released(&p, Duration::from_secs(30)).unwrap()
        });
        drop(first);
        assert!(waiter.join().unwrap(), "released when the holder lets go");
        InstanceLock::acquire(&p).unwrap();
    }

    #[test]
    fn a_lock_file_without_a_pid_says_the_pid_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("faceswapd.lock");
        let holder = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        holder.try_lock().unwrap();
        std::fs::write(&p, "not a pid").unwrap();
        let err = InstanceLock::acquire(&p).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::AlreadyRunning { pid: None, .. }));
        assert!(
            text.contains("pid unknown") && !text.contains("pid 0"),
            "{text}"
        );
        assert!(text.contains("faceswapd.lock"), "{text}");
    }
}
