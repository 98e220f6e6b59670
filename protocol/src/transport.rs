//! Client side of the local socket: connect with a deadline, handshake, request/response.

use std::time::Duration;

use interprocess::ConnectWaitMode;
use interprocess::local_socket::{ConnectOptions, Stream, prelude::*};

use crate::handshake::client_handshake;
use crate::{
    ClientKind, Hello, ProtocolError, Request, Response, Welcome, read_frame, write_frame,
};

pub use crate::locations::SocketPath;

/// An open, handshaken connection to the daemon.
pub struct Connection {
    stream: Stream,
    welcome: Welcome,
}

impl Connection {
    /// Connects and handshakes; every socket operation is bounded by `timeout`.
    pub fn connect(
        addr: &SocketPath,
        client: ClientKind,
        timeout: Duration,
    ) -> Result<Self, ProtocolError> {
        let mut stream = connect_raw(addr, timeout)?;
        let welcome = client_handshake(
            &mut stream,
            &Hello {
                client,
                client_version: env!("CARGO_PKG_VERSION").to_string(),
            },
        )?;
        Ok(Connection { stream, welcome })
    }

    /// What the daemon said in the handshake.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Changes the deadline for each later send and receive (`None`: wait forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ProtocolError> {
        self.stream.set_recv_timeout(timeout)?;
        self.stream.set_send_timeout(timeout)?;
        Ok(())
    }

    /// Sends a request and returns the daemon's response as it came (errors included).
    pub fn request(&mut self, req: &Request) -> Result<Response, ProtocolError> {
        write_frame(&mut self.stream, req)?;
        read_frame(&mut self.stream)
    }

    /// Like [`Connection::request`], but a [`Response::Error`] becomes [`ProtocolError::Remote`].
    pub fn call(&mut self, req: &Request) -> Result<Response, ProtocolError> {
        match self.request(req)? {
            Response::Error(e) => Err(ProtocolError::Remote {
                code: e.code,
                message: e.message,
            }),
            other => Ok(other),
        }
    }
}

/// Opens the socket without handshaking (tests of the handshake itself), bounded by `timeout`.
pub fn connect_raw(addr: &SocketPath, timeout: Duration) -> Result<Stream, ProtocolError> {
    let stream = ConnectOptions::new()
        .name(addr.to_name()?)
        .wait_mode(ConnectWaitMode::Timeout(timeout))
        .connect_sync()?;
    stream.set_recv_timeout(Some(timeout))?;
    stream.set_send_timeout(Some(timeout))?;
    Ok(stream)
}
