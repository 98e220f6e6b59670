//! The first exchange on every connection.
//!
//! Each side first writes an 8-byte preamble, `b"FSPP"` + protocol version (`u32` LE), which stays
//! readable across releases even when message layouts change; then the client sends a framed
//! [`Hello`] and the daemon answers with a framed [`Welcome`] or an error.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, ErrorReply, ProtocolError, Response, read_frame, write_frame};

/// Marks a Faceswap++ endpoint.
pub const MAGIC: [u8; 4] = *b"FSPP";

/// Version of the control protocol and slot layout; bumped on any incompatible change.
/// v8: closed option sets are typed ([`faceswap_options`]); a name outside a set no longer
/// reaches the daemon. v9: slot layout 2, whose content hash is a hash of row-group hashes
/// ([`crate::slot`]). v10: `SwapSettings::project` (a trainer project's newest model).
pub const PROTOCOL_VERSION: u32 = 10;

/// Who is connecting, for logs and for per-kind policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientKind {
    /// The `faceswapd` command line.
    Cli,
    /// The OFX plugin inside an editor.
    OfxPlugin,
    /// A test or benchmark harness.
    Test,
}

/// Sent by the client after the preamble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Kind of client.
    pub client: ClientKind,
    /// The client's release (`CARGO_PKG_VERSION`), for logs.
    pub client_version: String,
}

/// The daemon's answer to a good [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The daemon's release.
    pub daemon_version: String,
    /// The daemon's process id.
    pub pid: u32,
}

fn preamble(version: u32) -> [u8; 8] {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&MAGIC);
    p[4..].copy_from_slice(&version.to_le_bytes());
    p
}

fn read_preamble<R: Read>(r: &mut R) -> Result<u32, ProtocolError> {
    let mut p = [0u8; 8];
    r.read_exact(&mut p).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtocolError::Disconnected,
        _ => e.into(),
    })?;
    if p[..4] != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    Ok(u32::from_le_bytes([p[4], p[5], p[6], p[7]]))
}

/// Client side: sends the preamble and `hello`, returns the daemon's [`Welcome`].
pub fn client_handshake<S: Read + Write>(
    s: &mut S,
    hello: &Hello,
) -> Result<Welcome, ProtocolError> {
    client_handshake_as(s, hello, PROTOCOL_VERSION)
}

/// [`client_handshake`] announcing an arbitrary version (tests of the mismatch path).
pub fn client_handshake_as<S: Read + Write>(
    s: &mut S,
    hello: &Hello,
    version: u32,
) -> Result<Welcome, ProtocolError> {
    s.write_all(&preamble(version))?;
    write_frame(s, hello)?;
    let theirs = read_preamble(s)?;
    if theirs != version {
        return Err(ProtocolError::VersionMismatch {
            ours: version,
            theirs,
        });
    }
    match read_frame::<_, Result<Welcome, ErrorReply>>(s)? {
        Ok(w) => Ok(w),
        Err(e) => Err(ProtocolError::Remote {
            code: e.code,
            message: e.message,
        }),
    }
}

/// Daemon side: reads the client's preamble and [`Hello`], then answers with `reply` (a
/// [`Welcome`], or a refusal such as "busy"). A version mismatch is answered with an error and
/// returned, as is a refusal, so the caller closes the connection.
pub fn server_handshake<S: Read + Write>(
    s: &mut S,
    reply: Result<Welcome, ErrorReply>,
) -> Result<Hello, ProtocolError> {
    let theirs = read_preamble(s)?;
    // The preamble is answered before the Hello is decoded: an older or newer client can always
    // read our version even if its Hello layout differs from ours.
    s.write_all(&preamble(PROTOCOL_VERSION))?;
    if theirs != PROTOCOL_VERSION {
        let err = ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        };
        let refusal: Result<Welcome, ErrorReply> = Err(ErrorReply {
            code: ErrorCode::VersionMismatch,
            message: err.to_string(),
        });
        // Best effort: the client may already have hung up.
        let _ = write_frame(s, &refusal);
        return Err(err);
    }
    let hello: Hello = read_frame(s)?;
    write_frame(s, &reply)?;
    match reply {
        Ok(_) => Ok(hello),
        Err(e) => Err(ProtocolError::Remote {
            code: e.code,
            message: e.message,
        }),
    }
}

/// Convenience for the daemon: the error frame sent when a request is refused.
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply {
        code,
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A duplex stand-in: reads from `input`, collects writes in `output`.
    struct Pipe {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Pipe {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(b)
        }
    }
    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.output.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn hello() -> Hello {
        Hello {
            client: ClientKind::Test,
            client_version: "0".into(),
        }
    }

    fn client_bytes(version: u32) -> Vec<u8> {
        let mut out = preamble(version).to_vec();
        write_frame(&mut out, &hello()).unwrap();
        out
    }

    #[test]
    fn both_sides_report_a_version_mismatch() {
        let mut server = Pipe {
            input: Cursor::new(client_bytes(PROTOCOL_VERSION + 1)),
            output: Vec::new(),
        };
        let welcome = Welcome {
            daemon_version: "x".into(),
            pid: 1,
        };
        let err = server_handshake(&mut server, Ok(welcome)).unwrap_err();
        assert!(
            matches!(err, ProtocolError::VersionMismatch { .. }),
            "{err}"
        );
        // The client, reading what the server wrote, sees the mismatch too.
        let mut client = Pipe {
            input: Cursor::new(server.output),
            output: Vec::new(),
        };
        let err = client_handshake_as(&mut client, &hello(), PROTOCOL_VERSION + 1).unwrap_err();
        assert!(
            err.to_string().contains("protocol version mismatch"),
            "{err}"
        );
    }

    #[test]
    fn good_handshake_and_refusal() {
        let welcome = Welcome {
            daemon_version: "x".into(),
            pid: 7,
        };
        let mut server = Pipe {
            input: Cursor::new(client_bytes(PROTOCOL_VERSION)),
            output: Vec::new(),
        };
        assert_eq!(
            server_handshake(&mut server, Ok(welcome.clone())).unwrap(),
            hello()
        );
        let mut client = Pipe {
            input: Cursor::new(server.output),
            output: Vec::new(),
        };
        assert_eq!(client_handshake(&mut client, &hello()).unwrap(), welcome);

        let mut server = Pipe {
            input: Cursor::new(client_bytes(PROTOCOL_VERSION)),
            output: Vec::new(),
        };
        let busy = ErrorReply {
            code: ErrorCode::Busy,
            message: "busy".into(),
        };
        assert!(server_handshake(&mut server, Err(busy)).is_err());
        let mut client = Pipe {
            input: Cursor::new(server.output),
            output: Vec::new(),
        };
        let err = client_handshake(&mut client, &hello()).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::Remote {
                code: ErrorCode::Busy,
                ..
            }
        ));
    }

    #[test]
    fn garbage_preamble_is_bad_magic() {
        let mut server = Pipe {
            input: Cursor::new(b"GET / HTTP/1.1\r\n".to_vec()),
            output: Vec::new(),
        };
        let welcome = Welcome {
            daemon_version: "x".into(),
            pid: 1,
        };
        assert!(matches!(
            server_handshake(&mut server, Ok(welcome)),
            Err(ProtocolError::BadMagic)
        ));
    }
}
