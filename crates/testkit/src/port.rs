//! A port where nothing listens, for tests of what a command says when no
//! instance answers. A port found by binding and dropping a listener could
//! be taken by a parallel test's instance before the command dials it; this
//! one stays bound, never listening, for as long as the value lives, so a
//! connect to it is refused and nobody else can bind it meanwhile.

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};

/// A loopback TCP port held bound (never listening) until drop.
pub struct RefusedPort {
    /// Bound without `SO_REUSEADDR`: on Linux two sockets that both set it
    /// may share a port while neither listens, so a listener could still
    /// join; without it every other bind of the port fails.
    _socket: Socket,
    port: u16,
}

impl RefusedPort {
    /// Binds a fresh port on 127.0.0.1; panics if it cannot.
    pub fn new() -> RefusedPort {
        RefusedPort::try_new().unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Binds a fresh port on 127.0.0.1.
    pub fn try_new() -> Result<RefusedPort> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).context("creating a TCP socket")?;
        let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&any.into()).context("binding 127.0.0.1:0")?;
        let port = socket
            .local_addr()
            .context("reading the bound address")?
            .as_socket()
            .context("the bound address is not an IP address")?
            .port();
        Ok(RefusedPort {
            _socket: socket,
            port,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        RefusedPort::new()
    }
}

#[cfg(test)]
mod tests {
    use super::RefusedPort;

    #[test]
    fn a_connect_is_refused_and_nobody_else_can_bind_it() {
        let held = RefusedPort::new();
        let err = std::net::TcpStream::connect(("127.0.0.1", held.port())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // std's bind sets SO_REUSEADDR, as the service's does: still refused.
        let err = std::net::TcpListener::bind(("127.0.0.1", held.port())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        let err = std::net::TcpListener::bind(("0.0.0.0", held.port())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    }
}
