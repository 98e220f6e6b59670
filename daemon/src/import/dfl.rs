//! DeepFaceLab's aligned face JPGs: DFL keeps each face's metadata as a pickled Python dict in
//! the JPEG's APP15 segment (`DFLIMG/DFLJPG.py`). Keys read here: `face_type`, `landmarks`
//! (aligned-face pixels), `source_filename`, `source_rect`, `source_landmarks` (frame pixels),
//! `image_to_face_mat` (frame → aligned face, 2×3), `seg_ie_polys` (XSeg editor labels, in
//! aligned-face pixels) and `xseg_mask` (an encoded image). Other keys are ignored. Values may
//! be Python lists or NumPy arrays (DFL stores both); NumPy arrays are read from their pickled
//! state (shape and raw little-endian bytes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

use crate::geometry::Affine;
use crate::masks::xseg::LabelPolygon;

/// Why a DFL face file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DflError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Not a JPEG, or its segments are cut short.
    #[error("{0} is not a valid JPEG ({1})")]
    NotJpeg(PathBuf, String),
    /// A JPEG without DFL metadata.
    #[error(
        "{0} has no DeepFaceLab metadata (no APP15 segment); use the aligned faces DFL wrote (workspace/data_*/aligned)"
    )]
    NoMetadata(PathBuf),
    /// The metadata is not a pickle we can read, or a key holds the wrong kind of value.
    #[error("{0}: DeepFaceLab metadata is damaged: {1}")]
    Damaged(PathBuf, String),
}

/// The metadata of one DFL aligned face.
#[derive(Debug, Clone, PartialEq)]
pub struct DflFace {
    /// `whole_face`, `full_face`, `head`, … (DFL's `FaceType` names).
    pub face_type: Option<String>,
    /// Frame file the face came from.
    pub source_filename: Option<String>,
    /// Detection rectangle in the frame (left, top, right, bottom).
    pub source_rect: Option<[f64; 4]>,
    /// 68 landmarks in frame pixels.
    pub source_landmarks: Option<Vec<[f64; 2]>>,
    /// 68 landmarks in aligned-face pixels.
    pub landmarks: Option<Vec<[f64; 2]>>,
    /// Frame → aligned face pixels.
    pub image_to_face_mat: Option<Affine>,
    /// XSeg editor polygons in aligned-face pixels, as DFL applies them (includes first).
    pub seg_ie_polys: Vec<LabelPolygon>,
    /// The trained-XSeg mask DFL stored (aligned-face pixels), as encoded image bytes.
    pub xseg_mask: Option<Vec<u8>>,
}

/// Where a DFL face sits in its frame.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Frame → aligned face pixels.
    pub to_face: Affine,
    /// Aligned face → frame pixels.
    pub to_frame: Affine,
    /// 68 landmarks in frame pixels.
    pub landmarks: Vec<[f64; 2]>,
    /// The frame file it came from.
    pub source: String,
}

impl DflFace {
    /// Its matrix both ways, frame landmarks (DFL's `source_landmarks`, else its aligned
    /// landmarks mapped back) and frame name; an error says what the metadata lacks.
    pub fn placement(&self) -> Result<Placement, String> {
        let to_face = self
            .image_to_face_mat
            .ok_or("no image_to_face_mat to place it in its frame")?;
        let to_frame = to_face.inverse().ok_or("image_to_face_mat is singular")?;
        let landmarks = match (&self.source_landmarks, &self.landmarks) {
            (Some(lm), _) if lm.len() == 68 => lm.clone(),
            (_, Some(lm)) if lm.len() == 68 => lm.iter().map(|p| to_frame.apply(*p)).collect(),
            _ => return Err("no 68 landmarks".into()),
        };
        let source = self.source_filename.clone().ok_or("no source_filename")?;
        Ok(Placement {
            to_face,
            to_frame,
            landmarks,
            source,
        })
    }
}

/// Reads a DFL aligned face JPG's metadata.
pub fn read_dfl_jpg(path: &Path) -> Result<DflFace, DflError> {
    let bytes = std::fs::read(path).map_err(|e| DflError::Io(path.to_path_buf(), e))?;
    let payload = app15(&bytes).map_err(|e| DflError::NotJpeg(path.to_path_buf(), e))?;
    let payload = payload.ok_or_else(|| DflError::NoMetadata(path.to_path_buf()))?;
    parse_dict(payload).map_err(|e| DflError::Damaged(path.to_path_buf(), e))
}

/// The first APP15 segment's payload. JPEG markers are walked by hand: a dozen lines, and the
/// image crates do not expose application segments.
fn app15(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("no start-of-image marker".into());
    }
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return Err(format!("expected a marker at byte {at}"));
        }
        let marker = bytes[at + 1];
        match marker {
            // Fill bytes, and markers without a length.
            0xFF => at += 1,
            0x01 | 0xD0..=0xD7 => at += 2,
            // Start of scan or end of image: the metadata segments come before.
            0xDA | 0xD9 => return Ok(None),
            _ => {
                let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
                let end = at + 2 + len;
                if len < 2 || end > bytes.len() {
                    return Err(format!("segment at byte {at} runs past the end"));
                }
                if marker == 0xEF {
                    return Ok(Some(&bytes[at + 4..end]));
                }
                at = end;
            }
        }
    }
    Err("cut short before the image data".into())
}

fn parse_dict(payload: &[u8]) -> Result<DflFace, String> {
    let value = serde_pickle::value_from_slice(
        payload,
        DeOptions::new()
            .replace_unresolved_globals()
            .replace_recursive_structures(),
    )
    .map_err(|e| format!("not a readable pickle: {e}"))?;
    let Value::Dict(dict) = value else {
        return Err("the pickle is not a dict".into());
    };
    let get = |key: &str| get(&dict, key);
    let points = |key: &str| -> Result<Option<Vec<[f64; 2]>>, String> {
        get(key)
            .map(|v| {
                let m = matrix(v).map_err(|e| format!("{key}: {e}"))?;
                m.iter()
                    .map(|row| match row[..] {
                        [x, y] => Ok([x, y]),
                        _ => Err(format!("{key}: a point has {} coordinates", row.len())),
                    })
                    .collect()
            })
            .transpose()
    };
    let text = |key: &str| -> Option<String> {
        match get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    };
    let source_rect = get("source_rect")
        .map(|v| {
            let flat: Vec<f64> = matrix(v)?.into_iter().flatten().collect();
            <[f64; 4]>::try_from(flat).map_err(|f| format!("source_rect has {} values", f.len()))
        })
        .transpose()?;
    let image_to_face_mat = get("image_to_face_mat")
        .map(|v| {
            let m = matrix(v).map_err(|e| format!("image_to_face_mat: {e}"))?;
            match &m[..] {
                [a, b, ..] if a.len() == 3 && b.len() == 3 => {
                    Ok(Affine([[a[0], a[1], a[2]], [b[0], b[1], b[2]]]))
                }
                _ => Err("image_to_face_mat is not 2×3".to_string()),
            }
        })
        .transpose()?;
    let xseg_mask = match get("xseg_mask") {
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(other) => numpy(other).map(|(_, raw)| raw),
        None => None,
    };
    Ok(DflFace {
        face_type: text("face_type"),
        source_filename: text("source_filename"),
        source_rect,
        source_landmarks: points("source_landmarks")?,
        landmarks: points("landmarks")?,
        image_to_face_mat,
        seg_ie_polys: get("seg_ie_polys")
            .map(polys)
            .transpose()?
            .unwrap_or_default(),
        xseg_mask,
    })
}

/// A key of a pickled dict (a `None` value counts as absent).
pub(super) fn get<'a>(d: &'a BTreeMap<HashableValue, Value>, key: &str) -> Option<&'a Value> {
    d.get(&HashableValue::String(key.into()))
        .filter(|v| !matches!(v, Value::None))
}

/// `seg_ie_polys`: DFL 2's `{'polys': [{'type': 0|1, 'pts': …}]}` or the older
/// `[(type, pts), …]`; sorted includes first, as DFL's `SegIEPolys.load` does.
fn polys(v: &Value) -> Result<Vec<LabelPolygon>, String> {
    let items: Vec<(i64, &Value)> = match v {
        Value::Dict(d) => match d.get(&HashableValue::String("polys".into())) {
            Some(Value::List(list)) => list
                .iter()
                .map(|p| {
                    let Value::Dict(p) = p else {
                        return Err("a polygon is not a dict".to_string());
                    };
                    let ty = p.get(&HashableValue::String("type".into()));
                    let pts = p.get(&HashableValue::String("pts".into()));
                    match (ty, pts) {
                        (Some(Value::I64(t)), Some(pts)) => Ok((*t, pts)),
                        _ => Err("a polygon lacks its type or points".to_string()),
                    }
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("seg_ie_polys has no polys list".into()),
        },
        Value::List(list) | Value::Tuple(list) => list
            .iter()
            .map(|p| match p {
                Value::List(pair) | Value::Tuple(pair) => match &pair[..] {
                    [Value::I64(t), pts] => Ok((*t, pts)),
                    _ => Err("a polygon is not (type, points)".to_string()),
                },
                _ => Err("a polygon is not (type, points)".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("seg_ie_polys is neither a dict nor a list".into()),
    };
    let mut out = Vec::with_capacity(items.len());
    for (ty, pts) in items {
        let points = matrix(pts)
            .map_err(|e| format!("seg_ie_polys points: {e}"))?
            .into_iter()
            .filter_map(|row| (row.len() == 2).then(|| [row[0], row[1]]))
            .collect();
        out.push(LabelPolygon {
            include: ty == 1,
            points,
        });
    }
    out.sort_by_key(|p| !p.include);
    Ok(out)
}

/// A number, list of numbers, list of lists, or NumPy array, as rows of f64.
pub(super) fn matrix(v: &Value) -> Result<Vec<Vec<f64>>, String> {
    let number = |v: &Value| match v {
        Value::F64(x) => Ok(*x),
        Value::I64(x) => Ok(*x as f64),
        other => Err(format!("{other:?} is not a number")),
    };
    if let Some((shape, raw)) = numpy(v) {
        return numpy_rows(&shape, &raw);
    }
    match v {
        Value::List(items) | Value::Tuple(items) => {
            if items
                .iter()
                .all(|i| matches!(i, Value::F64(_) | Value::I64(_)))
            {
                return Ok(vec![items.iter().map(number).collect::<Result<_, _>>()?]);
            }
            items
                .iter()
                .map(|row| match row {
                    Value::List(r) | Value::Tuple(r) => r.iter().map(number).collect(),
                    other => {
                        let rows = matrix(other)?;
                        Ok(rows.into_iter().flatten().collect())
                    }
                })
                .collect()
        }
        other => Err(format!("{other:?} is neither a list nor a NumPy array")),
    }
}

/// A NumPy float array's values as rows (the last axis).
fn numpy_rows(shape: &[usize], raw: &[u8]) -> Result<Vec<Vec<f64>>, String> {
    let count: usize = shape.iter().product();
    let values: Vec<f64> = match (count, raw.len()) {
        (0, _) => Vec::new(),
        (n, len) if len == n * 8 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        (n, len) if len == n * 4 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64)
            .collect(),
        (n, len) => {
            return Err(format!(
                "a NumPy array of {n} values holds {len} bytes (only float32/float64 are read)"
            ));
        }
    };
    let cols = match shape {
        [.., _, last] => *last,
        _ => count,
    }
    .max(1);
    Ok(values.chunks(cols).map(|c| c.to_vec()).collect())
}

/// A pickled NumPy array, after serde-pickle replaced the object with its `__setstate__`
/// argument `(version, shape, dtype, fortran, raw bytes)`: its shape and raw bytes.
pub(super) fn numpy(v: &Value) -> Option<(Vec<usize>, Vec<u8>)> {
    let Value::Tuple(state) = v else {
        return None;
    };
    let [_, Value::Tuple(shape), _, _, Value::Bytes(raw)] = &state[..] else {
        return None;
    };
    let shape = shape
        .iter()
        .map(|d| match d {
            Value::I64(n) if *n >= 0 => Some(*n as usize),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((shape, raw.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_segments_are_walked_to_app15_and_bad_files_named() {
        // SOI, APP0 (4 bytes), APP15 "abc", SOS.
        let mut jpg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xEF, 0, 5];
        jpg.extend(b"abc");
        jpg.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(app15(&jpg).unwrap(), Some(&b"abc"[..]));
        let none = [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xDA, 0, 2];
        assert_eq!(app15(&none).unwrap(), None);
        assert!(app15(b"\x89PNG").is_err());
        let cut = [0xFF, 0xD8, 0xFF, 0xEF, 0, 200, 1, 2];
        assert!(app15(&cut).unwrap_err().contains("past the end"));
        assert!(parse_dict(b"not a pickle").unwrap_err().contains("pickle"));
    }
}
