//! Accepting connections for the gRPC servers (the OTLP receiver and the query API): a bound
//! on open connections, the TLS handshake done here, and a deadline on the start of the
//! HTTP/2 connection.
//!
//! tonic's own accept loop takes every connection it is offered and waits forever for a
//! client that connects and sends nothing, so a few thousand silent sockets would hold the
//! server's file descriptors. Here:
//! - at most [`MAX_CONNECTIONS`] connections are open; past that, accepting waits for one to
//!   close (new clients queue in the kernel's backlog, they are not refused);
//! - a client must finish its TLS handshake and send the 24-byte HTTP/2 connection preface
//!   within `handshake_timeout` of connecting, or the connection is closed;
//! - handshakes run concurrently, one task per connection, so a slow one delays nobody.
//!
//! After the preface a connection is left alone: gRPC clients keep idle connections open
//! between exports, and closing them would turn the next export into a reconnect.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Most connections a gRPC server keeps open at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// The handshake deadline of the query API (the OTLP receiver's is configured).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_LEN: usize = 24;

/// The accepted connections of `listener`, handshaken (TLS when `tls` is set) and bounded,
/// as a stream for `serve_with_incoming`. It ends when `stop` is cancelled.
pub fn incoming(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    stop: CancellationToken,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        while let Some((stream, slot)) = accept(&listener, &slots, &stop).await {
            let deadline = Instant::now() + handshake_timeout;
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let io = match tls {
                    None => Io::Plain(stream),
                    Some(acceptor) => {
                        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => Io::Tls(Box::new(tls)),
                            // A failed or late handshake: the client sees the socket close.
                            _ => return,
                        }
                    }
                };
                let conn = Conn {
                    io,
                    _slot: slot,
                    preface_left: PREFACE_LEN,
                    deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Waits for a free slot among `slots`, then for a connection, with TCP_NODELAY set (tonic
/// sets it only on listeners it binds itself; without it a response written in two parts
/// waits for the client's delayed ACK, about 40 ms). `None` once `stop` is cancelled. Shared
/// by the gRPC servers and the OTLP/HTTP receiver.
pub async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    stop: &CancellationToken,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let slot = tokio::select! {
        _ = stop.cancelled() => return None,
        slot = slots.clone().acquire_owned() => slot.ok()?,
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, slot));
                }
                // Out of file descriptors and the like: the next accept may work.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

/// One accepted connection: its socket, its slot among [`MAX_CONNECTIONS`], and until the
/// preface has been read, the deadline for it.
pub struct Conn {
    io: Io,
    _slot: OwnedSemaphorePermit,
    preface_left: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Some(deadline) = &mut this.deadline {
            if let Poll::Ready(Ok(())) = read {
                let n = buf.filled().len() - before;
                this.preface_left = this.preface_left.saturating_sub(n);
                if this.preface_left == 0 || n == 0 {
                    this.deadline = None;
                }
                return read;
            }
            if read.is_pending() {
                ready!(deadline.as_mut().poll(cx));
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 connection preface within the handshake timeout",
                )));
            }
        }
        read
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
