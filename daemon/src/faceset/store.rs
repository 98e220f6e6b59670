//! The alignments store: every face found in a source, per frame, in a versioned binary file
//! written atomically (faceswap keeps the same data in its `.fsa` file).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::face::{ExtractSettings, Face, Smoothing};
use crate::atomic::write_atomic;
use crate::geometry::Affine;

const MAGIC: &[u8; 8] = b"FSPPALN\0";
/// Layout version of the store; bumped on incompatible changes (version 1 stores, without
/// masks, and version 2, without track ids, are still read).
pub const STORE_VERSION: u32 = 3;

/// What the faces were extracted from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Video file or image folder.
    pub path: String,
    /// Frame width of the first frame.
    pub width: u32,
    /// Frame height of the first frame.
    pub height: u32,
    /// Frames per second (videos).
    pub fps: Option<f64>,
}

/// One frame's faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameEntry {
    /// Frame name (image file name, or `frame_NNNNNN` for videos).
    pub name: String,
    /// Presentation timestamp in stream time base (videos).
    pub pts: Option<i64>,
    /// Faces in detection order.
    pub faces: Vec<StoredFace>,
}

/// A mask as stored with a face: 8-bit, `size`², deflate-compressed, with the frame→mask
/// matrix it was made at (faceswap keeps the same: a 128 px mask and its affine matrix).
/// Making and reading its plane are mask operations (`crate::masks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMask {
    /// Side in pixels.
    pub size: u32,
    /// Frame pixels → mask pixels.
    pub matrix: Affine,
    /// Deflate-compressed `size × size` bytes.
    pub data: Vec<u8>,
}

/// One XSeg label polygon, as stored with a face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelPolygon {
    /// Include (face) or exclude (hair, hands, glasses…).
    pub include: bool,
    /// Vertices in frame pixels.
    pub points: Vec<[f64; 2]>,
}

/// A face plus the file its aligned crop went to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFace {
    /// Geometry and filter result.
    pub face: Face,
    /// Aligned face file, relative to the faceset folder.
    pub file: Option<String>,
    /// Masks by name (`components`, `extended`, `hull`, `xseg`, …), each with the matrix it was
    /// made at.
    pub masks: BTreeMap<String, StoredMask>,
    /// XSeg labels: include/exclude polygons in frame pixels, applied in order.
    pub labels: Vec<LabelPolygon>,
    /// The track (the same person across frames) in videos; None for image folders.
    pub track: Option<u32>,
    /// Videos: how much the raw landmarks shook at this frame (frame-to-frame acceleration in
    /// eye distances; high when a hand or blur hides part of the face).
    pub shake: Option<f32>,
}

/// The version 2 layout (no track ids, no smoothing record), read and upgraded on load.
mod v2 {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::super::face::{ExtractSettings, Face};
    use super::SourceInfo;

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct StoredFace {
        pub face: Face,
        pub file: Option<String>,
        pub masks: BTreeMap<String, super::StoredMask>,
        pub labels: Vec<super::LabelPolygon>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct FrameEntry {
        pub name: String,
        pub pts: Option<i64>,
        pub faces: Vec<StoredFace>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct Alignments {
        pub source: SourceInfo,
        pub settings: ExtractSettings,
        pub frames: BTreeMap<u64, FrameEntry>,
    }
}

impl From<v2::Alignments> for Alignments {
    fn from(a: v2::Alignments) -> Self {
        Alignments {
            source: a.source,
            settings: a.settings,
            frames: a
                .frames
                .into_iter()
                .map(|(i, f)| {
                    let faces = f
                        .faces
                        .into_iter()
                        .map(|s| StoredFace {
                            face: s.face,
                            file: s.file,
                            masks: s.masks,
                            labels: s.labels,
                            track: None,
                            shake: None,
                        })
                        .collect();
                    (
                        i,
                        FrameEntry {
                            name: f.name,
                            pts: f.pts,
                            faces,
                        },
                    )
                })
                .collect(),
            smoothing: None,
        }
    }
}

/// The version 1 layout (no masks), read and upgraded on load.
mod v1 {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::super::face::{ExtractSettings, Face};
    use super::SourceInfo;

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct StoredFace {
        pub face: Face,
        pub file: Option<String>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct FrameEntry {
        pub name: String,
        pub pts: Option<i64>,
        pub faces: Vec<StoredFace>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct Alignments {
        pub source: SourceInfo,
        pub settings: ExtractSettings,
        pub frames: BTreeMap<u64, FrameEntry>,
    }
}

impl From<v1::Alignments> for v2::Alignments {
    fn from(a: v1::Alignments) -> Self {
        v2::Alignments {
            source: a.source,
            settings: a.settings,
            frames: a
                .frames
                .into_iter()
                .map(|(i, f)| {
                    let faces = f
                        .faces
                        .into_iter()
                        .map(|s| v2::StoredFace {
                            face: s.face,
                            file: s.file,
                            masks: BTreeMap::new(),
                            labels: Vec::new(),
                        })
                        .collect();
                    (
                        i,
                        v2::FrameEntry {
                            name: f.name,
                            pts: f.pts,
                            faces,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// The whole store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignments {
    /// The source.
    pub source: SourceInfo,
    /// Settings the faces were extracted with.
    pub settings: ExtractSettings,
    /// Frames by index (frames with no face are present with an empty list).
    pub frames: BTreeMap<u64, FrameEntry>,
    /// The landmark smoothing the faces were extracted with (None: off, or not a video).
    pub smoothing: Option<Smoothing>,
}

/// The store could not be read or written.
#[derive(Debug, Error)]
pub enum StoreError {
    /// File system.
    #[error("alignments file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not an alignments file, a newer version, or damaged.
    #[error("alignments file {path} is unusable: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl StoredFace {
    /// A face with nothing else yet: no file, masks, labels, track or shake.
    pub fn new(face: Face) -> StoredFace {
        StoredFace {
            face,
            file: None,
            masks: BTreeMap::new(),
            labels: Vec::new(),
            track: None,
            shake: None,
        }
    }
}

impl Alignments {
    /// An empty store for `source`, extracted with default settings and no smoothing.
    pub fn new(source: SourceInfo) -> Alignments {
        Alignments {
            source,
            settings: ExtractSettings::default(),
            frames: BTreeMap::new(),
            smoothing: None,
        }
    }

    /// Writes the store atomically.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let body =
            bincode::serde::encode_to_vec(self, bincode::config::standard()).map_err(|e| {
                StoreError::Invalid {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
        let mut bytes = Vec::with_capacity(12 + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&STORE_VERSION.to_le_bytes());
        bytes.extend_from_slice(&body);
        write_atomic(path, &bytes).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a store.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |reason: String| StoreError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(invalid("not a Faceswap++ alignments file".into()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let config = bincode::config::standard();
        match version {
            1 => {
                let (old, _): (v1::Alignments, _) =
                    bincode::serde::decode_from_slice(&bytes[12..], config)
                        .map_err(|e| invalid(format!("damaged: {e}")))?;
                Ok(v2::Alignments::from(old).into())
            }
            2 => {
                let (old, _): (v2::Alignments, _) =
                    bincode::serde::decode_from_slice(&bytes[12..], config)
                        .map_err(|e| invalid(format!("damaged: {e}")))?;
                Ok(old.into())
            }
            STORE_VERSION => {
                let (store, _) = bincode::serde::decode_from_slice(&bytes[12..], config)
                    .map_err(|e| invalid(format!("damaged: {e}")))?;
                Ok(store)
            }
            _ => Err(invalid(format!(
                "version {version}, this faceswapd reads versions 1 to {STORE_VERSION}; update faceswapd"
            ))),
        }
    }

    /// Indices of the frames that have at least one face.
    pub fn frames_with_faces(&self) -> std::collections::HashSet<u64> {
        self.frames
            .iter()
            .filter(|(_, e)| !e.faces.is_empty())
            .map(|(i, _)| *i)
            .collect()
    }

    /// Faces kept (not rejected), over all frames.
    pub fn accepted(&self) -> usize {
        self.frames
            .values()
            .flat_map(|f| &f.faces)
            .filter(|f| f.face.rejected.is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Affine;
    use crate::masks::{LandmarkMask, stored_landmark_mask};

    fn face() -> Face {
        Face {
            bbox: [10.0, 10.0, 90.0, 90.0],
            score: 0.9,
            landmarks: (0..68)
                .map(|i| [20.0 + i as f64, 30.0 + (i % 7) as f64])
                .collect(),
            presence: 0.99,
            legacy: Affine::IDENTITY,
            distance: 1.0,
            roll_deg: 0.0,
            rejected: None,
            mesh: Vec::new(),
        }
    }

    fn source() -> SourceInfo {
        SourceInfo {
            path: "clip.mp4".into(),
            width: 640,
            height: 360,
            fps: Some(25.0),
        }
    }

    #[test]
    fn masks_round_trip_through_the_store_and_version_1_and_2_stores_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alignments.fsppa");
        let f = face();
        let mut masks = BTreeMap::new();
        masks.insert(
            "components".to_string(),
            stored_landmark_mask(LandmarkMask::Components, &f.landmarks68()),
        );
        let mut frames = BTreeMap::new();
        frames.insert(
            3,
            FrameEntry {
                name: "frame_000003".into(),
                pts: Some(3),
                faces: vec![StoredFace {
                    face: f.clone(),
                    file: Some("faces/a.png".into()),
                    masks: masks.clone(),
                    labels: Vec::new(),
                    track: Some(4),
                    shake: Some(0.01),
                }],
            },
        );
        let store = Alignments {
            source: source(),
            settings: ExtractSettings::default(),
            frames,
            smoothing: Some(crate::faceset::face::Smoothing::default()),
        };
        store.save(&path).unwrap();
        assert_eq!(Alignments::load(&path).unwrap(), store);

        // A version 2 file (masks, no tracks) loads with its masks.
        let old = v2::Alignments {
            source: source(),
            settings: ExtractSettings::default(),
            frames: BTreeMap::from([(
                0,
                v2::FrameEntry {
                    name: "frame_000000".into(),
                    pts: None,
                    faces: vec![v2::StoredFace {
                        face: f.clone(),
                        file: None,
                        masks,
                        labels: Vec::new(),
                    }],
                },
            )]),
        };
        let body = bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&body);
        let p2 = dir.path().join("v2.fsppa");
        std::fs::write(&p2, bytes).unwrap();
        let up = Alignments::load(&p2).unwrap();
        assert!(up.frames[&0].faces[0].masks.contains_key("components"));
        assert_eq!((up.frames[&0].faces[0].track, up.smoothing), (None, None));

        // A version 1 file, as earlier releases wrote it.
        let old = v1::Alignments {
            source: source(),
            settings: ExtractSettings::default(),
            frames: BTreeMap::from([(
                0,
                v1::FrameEntry {
                    name: "frame_000000".into(),
                    pts: None,
                    faces: vec![v1::StoredFace {
                        face: f,
                        file: None,
                    }],
                },
            )]),
        };
        let body = bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&body);
        let p1 = dir.path().join("v1.fsppa");
        std::fs::write(&p1, bytes).unwrap();
        let up = Alignments::load(&p1).unwrap();
        assert_eq!(up.frames[&0].faces.len(), 1);
        assert!(up.frames[&0].faces[0].masks.is_empty());
        // A newer version is refused with a clear message.
        let mut newer = std::fs::read(&path).unwrap();
        newer[8..12].copy_from_slice(&99u32.to_le_bytes());
        std::fs::write(&p1, newer).unwrap();
        let e = Alignments::load(&p1).unwrap_err().to_string();
        assert!(e.contains("update faceswapd"), "{e}");
    }
}
