//! Statements that survive a transaction-mode pooler (`DATABASE_STATEMENT_CACHE=false`).
//!
//! Behind PgBouncer or Supavisor in transaction mode, each request that ends in `Sync` may run on
//! another server connection. tokio-postgres prepares every statement under a name in one
//! request (`Parse`/`Describe`/`Sync`) and runs it in the next (`Bind`/`Execute`/`Sync`), so the
//! second request can land where the name does not exist ("prepared statement "s3" does not
//! exist"), and names left on a server collide with another client's. Disabling diesel's
//! statement cache alone does not change that.
//!
//! [`Unnamed`] sits between tokio-postgres and the socket (under TLS when there is TLS) and
//! rewrites the client's messages so that no request depends on another's server connection:
//! - `Parse` of a named statement becomes a `Parse` of the unnamed one (its `Describe` too), and
//!   the statement's text and parameter types are kept on the client;
//! - `Bind` of such a statement is preceded by a `Parse` of its text, in the same request, and
//!   binds the unnamed statement: each execution parses and runs in one round trip, as libpq's
//!   `PQexecParams` does. The server's extra `ParseComplete` is removed from the replies;
//! - `Close` of the statement forgets the kept text (the `Close` itself is harmless).
//!
//! Everything else (startup, TLS negotiation, simple queries, errors, notices) passes unchanged.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsStream};

const SSL_REQUEST: i32 = 80_877_103;
const PROTOCOL_3: i32 = 196_608;
/// Output held before `poll_write` waits for the socket.
const HIGH_WATER: usize = 64 * 1024;

/// A stream rewriting the PostgreSQL frontend protocol as the module docs say.
pub struct Unnamed<S> {
    inner: S,
    /// Bytes the client wrote, not yet a whole message.
    pending_in: BytesMut,
    /// Rewritten bytes waiting for the socket.
    out: BytesMut,
    /// Bytes from the server, not yet a whole message.
    read_in: BytesMut,
    /// Replies ready for the client.
    read_out: BytesMut,
    /// The client is still in the untyped startup messages.
    startup: bool,
    /// An `SSLRequest` was sent: the server's next byte is its one-byte answer.
    ssl_answer_due: bool,
    /// Relays bytes untouched (the socket under a TLS session, whose inside is rewritten).
    passthrough: bool,
    /// Statement name → the body of its `Parse` after the name (text and parameter types).
    statements: HashMap<Bytes, Bytes>,
    /// How many `Parse` messages were added to the request being written.
    current_added: u32,
    /// Requests sent and not yet answered by `ReadyForQuery`: how many `ParseComplete` replies
    /// to added `Parse` messages each still has to have removed.
    requests: VecDeque<u32>,
}

impl<S> Unnamed<S> {
    pub fn new(inner: S) -> Unnamed<S> {
        Unnamed {
            inner,
            pending_in: BytesMut::new(),
            out: BytesMut::new(),
            read_in: BytesMut::new(),
            read_out: BytesMut::new(),
            startup: true,
            ssl_answer_due: false,
            passthrough: false,
            statements: HashMap::new(),
            current_added: 0,
            requests: VecDeque::new(),
        }
    }

    /// From now on bytes pass untouched (TLS was agreed: a new `Unnamed` works inside it).
    pub fn into_passthrough(mut self) -> Unnamed<S> {
        self.passthrough = true;
        self
    }

    fn rewrite_written(&mut self) {
        loop {
            if self.startup {
                if self.pending_in.len() < 8 {
                    return;
                }
                let len = i32::from_be_bytes([
                    self.pending_in[0],
                    self.pending_in[1],
                    self.pending_in[2],
                    self.pending_in[3],
                ]);
                let code = i32::from_be_bytes([
                    self.pending_in[4],
                    self.pending_in[5],
                    self.pending_in[6],
                    self.pending_in[7],
                ]);
                let len = usize::try_from(len).unwrap_or(0).max(8);
                if self.pending_in.len() < len {
                    return;
                }
                let message = self.pending_in.split_to(len);
                if code == SSL_REQUEST {
                    self.ssl_answer_due = true;
                } else if code == PROTOCOL_3 {
                    self.startup = false;
                    // The startup's own `ReadyForQuery` ends it.
                    self.requests.push_back(0);
                }
                self.out.extend_from_slice(&message);
                continue;
            }
            if self.pending_in.len() < 5 {
                return;
            }
            let len = i32::from_be_bytes([
                self.pending_in[1],
                self.pending_in[2],
                self.pending_in[3],
                self.pending_in[4],
            ]);
            let len = usize::try_from(len).unwrap_or(0).max(4) + 1;
            if self.pending_in.len() < len {
                return;
            }
            let message = self.pending_in.split_to(len).freeze();
            self.rewrite_message(message);
        }
    }

    fn rewrite_message(&mut self, message: Bytes) {
        let tag = message[0];
        let body = message.slice(5..);
        match tag {
            b'P' => {
                if let Some((name, rest)) = cstr(&body) {
                    if !name.is_empty() {
                        self.statements.insert(name, rest.clone());
                        self.put(b'P', &[b"\0", &rest]);
                        return;
                    }
                }
            }
            b'D' if body.first() == Some(&b'S') => {
                if let Some((name, _)) = cstr(&body.slice(1..)) {
                    if self.statements.contains_key(&name) {
                        self.put(b'D', &[b"S\0"]);
                        return;
                    }
                }
            }
            b'B' => {
                if let Some((portal, rest)) = cstr(&body) {
                    if let Some((name, params)) = cstr(&rest) {
                        if let Some(parse) = self.statements.get(&name).cloned() {
                            self.put(b'P', &[b"\0", &parse]);
                            self.put(b'B', &[&portal, b"\0\0", &params]);
                            self.current_added += 1;
                            return;
                        }
                    }
                }
            }
            b'C' if body.first() == Some(&b'S') => {
                if let Some((name, _)) = cstr(&body.slice(1..)) {
                    self.statements.remove(&name);
                }
            }
            b'S' => {
                self.requests.push_back(self.current_added);
                self.current_added = 0;
            }
            b'Q' => self.requests.push_back(0),
            _ => {}
        }
        self.out.extend_from_slice(&message);
    }

    /// Appends a message of `tag` whose body is `parts` joined.
    fn put(&mut self, tag: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 4;
        self.out.put_u8(tag);
        self.out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
        for part in parts {
            self.out.extend_from_slice(part);
        }
    }

    fn filter_read(&mut self) {
        if self.ssl_answer_due && !self.read_in.is_empty() {
            self.ssl_answer_due = false;
            let answer = self.read_in.split_to(1);
            self.read_out.extend_from_slice(&answer);
        }
        while self.read_in.len() >= 5 {
            let len = i32::from_be_bytes([
                self.read_in[1],
                self.read_in[2],
                self.read_in[3],
                self.read_in[4],
            ]);
            let len = usize::try_from(len).unwrap_or(0).max(4) + 1;
            if self.read_in.len() < len {
                return;
            }
            let message = self.read_in.split_to(len);
            match message[0] {
                b'1' => {
                    if let Some(added) = self.requests.front_mut() {
                        if *added > 0 {
                            // The `ParseComplete` of a `Parse` this stream added (all such
                            // replies are the same bytes, so which one goes does not matter).
                            *added -= 1;
                            continue;
                        }
                    }
                }
                b'Z' => {
                    self.requests.pop_front();
                }
                _ => {}
            }
            self.read_out.extend_from_slice(&message);
        }
    }
}

/// Splits a NUL-terminated string off the front of `bytes`: (the string, the rest).
fn cstr(bytes: &Bytes) -> Option<(Bytes, Bytes)> {
    let end = bytes.iter().position(|b| *b == 0)?;
    Some((bytes.slice(..end), bytes.slice(end + 1..)))
}

impl<S: AsyncWrite + Unpin> Unnamed<S> {
    /// Writes held output to the socket until it is all written or the socket is not ready.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Unnamed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.passthrough {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // A request written but not yet sent would leave the server silent.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            if !this.read_out.is_empty() {
                let n = this.read_out.len().min(buf.remaining());
                buf.put_slice(&this.read_out[..n]);
                this.read_out.advance(n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: whatever is left goes to the client as it is.
                let rest = this.read_in.split();
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                return Poll::Ready(Ok(()));
            }
            this.read_in.extend_from_slice(read.filled());
            this.filter_read();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Unnamed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.passthrough {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.out.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.pending_in.extend_from_slice(buf);
        this.rewrite_written();
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + AsyncRead + AsyncWrite + Unpin> TlsStream for Unnamed<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&i32::try_from(body.len() + 4).expect("len").to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn startup() -> Vec<u8> {
        let body = b"user\0postgres\0\0";
        let mut out = i32::try_from(body.len() + 8)
            .expect("len")
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(&PROTOCOL_3.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn named_statements_go_out_unnamed_and_each_bind_carries_its_parse() {
        let (client_side, mut server) = tokio::io::duplex(1 << 16);
        let mut client = Unnamed::new(client_side);
        let parse_body = b"SELECT $1\0\0\x01\0\0\0\x17";
        let mut sent = startup();
        sent.extend(message(b'P', &[b"s7\0".as_slice(), parse_body].concat()));
        sent.extend(message(b'D', b"Ss7\0"));
        sent.extend(message(b'S', b""));
        sent.extend(message(b'B', b"\0s7\0\0\0\0\x01\0\0\0\x01\x35\0\0"));
        sent.extend(message(b'E', b"\0\0\0\0\0"));
        sent.extend(message(b'S', b""));
        sent.extend(message(b'C', b"Ss7\0"));
        sent.extend(message(b'S', b""));
        client.write_all(&sent).await.expect("write");
        client.flush().await.expect("flush");

        let mut expected = startup();
        expected.extend(message(b'P', &[b"\0".as_slice(), parse_body].concat()));
        expected.extend(message(b'D', b"S\0"));
        expected.extend(message(b'S', b""));
        expected.extend(message(b'P', &[b"\0".as_slice(), parse_body].concat()));
        expected.extend(message(b'B', b"\0\0\0\0\0\x01\0\0\0\x01\x35\0\0"));
        expected.extend(message(b'E', b"\0\0\0\0\0"));
        expected.extend(message(b'S', b""));
        expected.extend(message(b'C', b"Ss7\0"));
        expected.extend(message(b'S', b""));
        let mut got = vec![0u8; expected.len()];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(got, expected);
        assert!(client.statements.is_empty(), "Close forgets the statement");

        // Replies: startup's ReadyForQuery; the prepare's; the execution's with the added
        // ParseComplete (removed); the close's.
        let ready = message(b'Z', b"I");
        let mut replies = ready.clone();
        replies.extend(message(b'1', b""));
        replies.extend(message(b't', b"\0\x01\0\0\0\x17"));
        replies.extend(message(b'n', b""));
        replies.extend(ready.clone());
        replies.extend(message(b'1', b""));
        replies.extend(message(b'2', b""));
        replies.extend(message(b'C', b"SELECT 1\0"));
        replies.extend(ready.clone());
        replies.extend(message(b'3', b""));
        replies.extend(ready.clone());
        server.write_all(&replies).await.expect("reply");

        let mut expected = ready.clone();
        expected.extend(message(b'1', b""));
        expected.extend(message(b't', b"\0\x01\0\0\0\x17"));
        expected.extend(message(b'n', b""));
        expected.extend(ready.clone());
        expected.extend(message(b'2', b""));
        expected.extend(message(b'C', b"SELECT 1\0"));
        expected.extend(ready.clone());
        expected.extend(message(b'3', b""));
        expected.extend(ready);
        let mut got = vec![0u8; expected.len()];
        client.read_exact(&mut got).await.expect("read replies");
        assert_eq!(got, expected);
        assert!(client.requests.is_empty());
    }
}
