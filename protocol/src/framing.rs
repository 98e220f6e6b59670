//! Length-prefixed bincode frames with a hard size limit checked before any allocation.

use std::io::{Read, Write};

use serde::{Serialize, de::DeserializeOwned};

use crate::ProtocolError;

/// Largest control message, in bytes (prefix excluded). Pixels go through shared memory, so
/// control messages stay small; the limit bounds what a hostile peer can make us allocate.
pub const MAX_CONTROL_MESSAGE: u32 = 1 << 20;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ MAX_CONTROL_MESSAGE as usize }>,
>;

// The limit makes bincode refuse container lengths that claim more than the message can hold.
const CONFIG: Config = bincode::config::standard().with_limit::<{ MAX_CONTROL_MESSAGE as usize }>();

/// Encodes a message body (no prefix).
pub fn encode_payload<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    let bytes = bincode::serde::encode_to_vec(msg, CONFIG)
        .map_err(|e| ProtocolError::Malformed(format!("cannot encode: {e}")))?;
    if bytes.len() > MAX_CONTROL_MESSAGE as usize {
        return Err(ProtocolError::TooLarge {
            len: bytes.len() as u64,
            max: MAX_CONTROL_MESSAGE,
        });
    }
    Ok(bytes)
}

/// Decodes a message body; trailing bytes are an error.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    if bytes.len() > MAX_CONTROL_MESSAGE as usize {
        return Err(ProtocolError::TooLarge {
            len: bytes.len() as u64,
            max: MAX_CONTROL_MESSAGE,
        });
    }
    let (msg, used) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(ProtocolError::Malformed(format!(
            "{} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(msg)
}

/// Writes one frame: `u32` LE length, then the body, in a single write.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), ProtocolError> {
    let body = encode_payload(msg)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame. A clean end of stream before the prefix is [`ProtocolError::Disconnected`];
/// a prefix over the limit is refused before the body is read or allocated.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, ProtocolError> {
    let body = read_frame_bytes(r)?;
    decode_payload(&body)
}

/// Reads one frame's body without decoding it.
pub fn read_frame_bytes<R: Read>(r: &mut R) -> Result<Vec<u8>, ProtocolError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Err(ProtocolError::Disconnected),
            Ok(0) => {
                return Err(ProtocolError::Malformed(
                    "connection closed inside a length prefix".into(),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(prefix);
    if len > MAX_CONTROL_MESSAGE {
        return Err(ProtocolError::TooLarge {
            len: len as u64,
            max: MAX_CONTROL_MESSAGE,
        });
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Malformed(format!("connection closed inside a {len}-byte message"))
        } else {
            e.into()
        }
    })?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExtractFramesJob, JobSpec, Request};

    #[test]
    fn frame_round_trips() {
        let req = Request::SubmitJob {
            spec: JobSpec::ExtractFrames(ExtractFramesJob {
                input: "/videos/clip.mp4".into(),
                output_dir: "/tmp/out".into(),
                every_nth: 2,
            }),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let back: Request = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn oversize_prefix_is_refused_before_reading_body() {
        let mut buf = (MAX_CONTROL_MESSAGE + 1).to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 8]);
        let err = read_frame::<_, Request>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn truncated_body_and_prefix_are_malformed_and_empty_is_disconnect() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Status).unwrap();
        buf.push(0); // announce one more byte than follows
        buf[0] += 1;
        buf.pop();
        let err = read_frame::<_, Request>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed(_)), "{err}");
        let err = read_frame::<_, Request>(&mut [1u8, 0].as_slice()).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed(_)), "{err}");
        let err = read_frame::<_, Request>(&mut [0u8; 0].as_slice()).unwrap_err();
        assert!(matches!(err, ProtocolError::Disconnected), "{err}");
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut body = encode_payload(&Request::Status).unwrap();
        body.push(7);
        assert!(matches!(
            decode_payload::<Request>(&body),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn huge_container_claims_do_not_allocate() {
        // Variant SubmitJob(ExtractFrames) then a string length claiming ~2^62 bytes.
        let mut body = encode_payload(&Request::SubmitJob {
            spec: JobSpec::ExtractFrames(ExtractFramesJob {
                input: String::new(),
                output_dir: String::new(),
                every_nth: 1,
            }),
        })
        .unwrap();
        body.truncate(2);
        body.push(0xFF); // varint: u64 follows
        body.extend_from_slice(&(u64::MAX >> 2).to_le_bytes());
        assert!(decode_payload::<Request>(&body).is_err());
    }
}
