//! Training checkpoints: one self-checking file holding the step, the weights and the optimiser
//! state, written atomically; the previous one is kept as a fallback.
//!
//! Layout: `FSPPCKPT` | u32 LE format version | u64 LE step | u64 LE model length | model
//! (burnpack) | u64 LE optimiser length | optimiser (burnpack) | SHA-256 of all of the above.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"FSPPCKPT";
/// Version 2 adds the trainer's own state (autoclip's norm history); version 1 files load with
/// none.
const VERSION: u32 = 2;

/// The current checkpoint's file name inside the model folder.
pub const CURRENT: &str = "checkpoint.fsppm";
/// The checkpoint before it.
pub const PREVIOUS: &str = "checkpoint.prev.fsppm";

/// A checkpoint's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Optimiser steps taken.
    pub step: u64,
    /// Weights (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimiser state (burnpack bytes).
    pub optimizer: Vec<u8>,
    /// The trainer's own state beyond the optimiser (empty when it has none).
    pub extra: Vec<u8>,
}

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File-system failure.
    #[error("checkpoint {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Not a checkpoint, a newer format, or damaged.
    #[error("checkpoint {0} is damaged or not a Faceswap++ checkpoint ({1})")]
    Invalid(PathBuf, String),
    /// Every checkpoint of a folder is damaged: what was wrong with each.
    #[error(
        "{0}; no valid checkpoint is left: restore a backup of the model folder or train again"
    )]
    NoneValid(String),
}

/// The step recorded in a checkpoint file's header, without reading or verifying the rest
/// (for status displays; loading verifies).
pub fn peek_step(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    (&head[..8] == MAGIC).then(|| u64::from_le_bytes(head[12..20].try_into().unwrap_or([0; 8])))
}

impl Checkpoint {
    /// Serialises with the trailing hash.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.model.len() + self.optimizer.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend_from_slice(&(self.model.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.model);
        out.extend_from_slice(&(self.optimizer.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.optimizer);
        out.extend_from_slice(&(self.extra.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.extra);
        let hash = Sha256::digest(&out);
        out.extend_from_slice(&hash);
        out
    }

    /// Parses and verifies bytes written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
        if bytes.len() < 8 + 4 + 8 + 8 + 8 + 32 {
            return Err(format!("only {} bytes", bytes.len()));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != hash {
            return Err("checksum mismatch (a partial or altered file)".into());
        }
        if &body[..8] != MAGIC {
            return Err("wrong magic".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap_or([0; 8]));
        let version = u32_at(8);
        if version != 1 && version != VERSION {
            return Err(format!(
                "format version {version}; this build reads versions 1 and {VERSION}"
            ));
        }
        let step = u64_at(12);
        let model_len = u64_at(20) as usize;
        let model_end = 28usize
            .checked_add(model_len)
            .filter(|e| e + 8 <= body.len())
            .ok_or("model length past the end")?;
        let optim_len = u64_at(model_end) as usize;
        let optim_start = model_end + 8;
        let optim_end = optim_start
            .checked_add(optim_len)
            .filter(|e| *e <= body.len())
            .ok_or("optimiser length past the end")?;
        let extra = if version == 1 {
            if optim_end != body.len() {
                return Err("optimiser length does not match the file".into());
            }
            Vec::new()
        } else {
            if optim_end + 8 > body.len() {
                return Err("no trainer state length".into());
            }
            let extra_len = u64_at(optim_end) as usize;
            if (optim_end + 8).checked_add(extra_len) != Some(body.len()) {
                return Err("trainer state length does not match the file".into());
            }
            body[optim_end + 8..].to_vec()
        };
        Ok(Checkpoint {
            step,
            model: body[28..model_end].to_vec(),
            optimizer: body[optim_start..optim_end].to_vec(),
            extra,
        })
    }
}

/// Makes `checkpoint` the current one in `dir`; the current one becomes the previous. A crash at
/// any instant leaves at least one complete, verifiable checkpoint (when there was one before).
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let current = dir.join(CURRENT);
    let previous = dir.join(PREVIOUS);
    if current.exists() {
        std::fs::rename(&current, &previous)
            .map_err(|e| CheckpointError::Io(current.clone(), e))?;
    }
    crate::atomic::write_atomic(&current, &checkpoint.to_bytes())
        .map_err(|e| CheckpointError::Io(current, e))
}

/// Folder of backups inside the model folder.
pub const BACKUPS: &str = "backups";

/// Copies the current checkpoint to `backups/step_NNNNNNNN.fsppm` (atomically) and keeps only
/// the newest `keep` backups (at least one).
pub fn backup(dir: &Path, step: u64, keep: usize) -> Result<(), CheckpointError> {
    let folder = dir.join(BACKUPS);
    std::fs::create_dir_all(&folder).map_err(|e| CheckpointError::Io(folder.clone(), e))?;
    let target = folder.join(format!("step_{step:08}.fsppm"));
    crate::atomic::copy_atomic(&dir.join(CURRENT), &target)
        .map_err(|e| CheckpointError::Io(target.clone(), e))?;
    let mut existing: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map_err(|e| CheckpointError::Io(folder.clone(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("step_"))
        })
        .collect();
    existing.sort();
    let excess = existing.len().saturating_sub(keep.max(1));
    for old in &existing[..excess] {
        std::fs::remove_file(old).map_err(|e| CheckpointError::Io(old.clone(), e))?;
    }
    Ok(())
}

/// Whether `dir` holds a checkpoint file (current or previous), valid or not.
pub fn has_any(dir: &Path) -> bool {
    dir.join(CURRENT).is_file() || dir.join(PREVIOUS).is_file()
}

/// The newest valid checkpoint in `dir`: the current one, else the previous one (a warning
/// names what was wrong with the current). `Ok(None)` when there is none at all.
pub fn load_latest(dir: &Path) -> Result<(Option<Checkpoint>, Vec<String>), CheckpointError> {
    let mut warnings = Vec::new();
    for name in [CURRENT, PREVIOUS] {
        let path = dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CheckpointError::Io(path, e)),
        };
        match Checkpoint::from_bytes(&bytes) {
            Ok(c) => return Ok((Some(c), warnings)),
            Err(why) => {
                let fallback = name == CURRENT && dir.join(PREVIOUS).is_file();
                let mut warning = CheckpointError::Invalid(path, why).to_string();
                if fallback {
                    warning.push_str("; falling back to the previous checkpoint");
                }
                warnings.push(warning);
            }
        }
    }
    if warnings.is_empty() {
        Ok((None, warnings))
    } else {
        Err(CheckpointError::NoneValid(warnings.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(step: u64) -> Checkpoint {
        Checkpoint {
            step,
            model: vec![step as u8; 100],
            optimizer: vec![7; 33],
            extra: vec![1, 2, 3],
        }
    }

    #[test]
    fn version_1_checkpoints_load_without_trainer_state() {
        // The version 1 layout: no trainer state section.
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&9u64.to_le_bytes());
        v1.extend_from_slice(&4u64.to_le_bytes());
        v1.extend_from_slice(&[1, 2, 3, 4]);
        v1.extend_from_slice(&2u64.to_le_bytes());
        v1.extend_from_slice(&[5, 6]);
        let hash = Sha256::digest(&v1);
        v1.extend_from_slice(&hash);
        let c = Checkpoint::from_bytes(&v1).unwrap();
        assert_eq!(
            (c.step, c.model, c.optimizer, c.extra),
            (9, vec![1, 2, 3, 4], vec![5, 6], vec![])
        );
    }

    #[test]
    fn round_trip_and_every_damage_is_caught() {
        let c = ck(5);
        let bytes = c.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), c);
        for cut in [0, 10, 60, bytes.len() - 1] {
            assert!(Checkpoint::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for flip in [0, 9, 30, bytes.len() - 5] {
            let mut bad = bytes.clone();
            bad[flip] ^= 1;
            assert!(Checkpoint::from_bytes(&bad).is_err(), "flip {flip}");
        }
    }

    #[test]
    fn backups_keep_the_newest_few() {
        let dir = tempfile::tempdir().unwrap();
        for step in 1..=5 {
            save(dir.path(), &ck(step)).unwrap();
            backup(dir.path(), step, 3).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join(BACKUPS))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "step_00000003.fsppm",
                "step_00000004.fsppm",
                "step_00000005.fsppm"
            ]
        );
        let bytes = std::fs::read(dir.path().join(BACKUPS).join("step_00000005.fsppm")).unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap().step, 5);
    }

    #[test]
    fn a_damaged_current_falls_back_to_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_latest(dir.path()).unwrap().0.is_none());
        save(dir.path(), &ck(1)).unwrap();
        save(dir.path(), &ck(2)).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap().0.unwrap().step, 2);
        std::fs::write(dir.path().join(CURRENT), b"half a file").unwrap();
        let (c, warnings) = load_latest(dir.path()).unwrap();
        assert_eq!(c.unwrap().step, 1);
        assert!(warnings[0].contains("damaged"), "{warnings:?}");
        assert!(warnings[0].contains("falling back"), "{warnings:?}");
        std::fs::write(dir.path().join(PREVIOUS), b"also bad").unwrap();
        let err = load_latest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
        assert!(err.contains("no valid checkpoint is left"), "{err}");
    }

    #[test]
    fn a_damaged_current_without_a_previous_says_so_without_promising_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &ck(1)).unwrap();
        assert!(!dir.path().join(PREVIOUS).exists());
        std::fs::write(dir.path().join(CURRENT), b"half a file").unwrap();
        let err = load_latest(dir.path()).unwrap_err().to_string();
        assert!(!err.contains("falling back"), "{err}");
        assert!(err.contains("restore a backup"), "{err}");
    }
}
