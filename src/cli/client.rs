//! The client side of the control socket: one connection to a running daemon, over which
//! [`Client::call`] sends a [`Request`] as one line of JSON and reads one line back as a
//! [`Response`]. `sluice top` keeps one `Client` and calls it every interval.
//!
//! Every failure is a [`ClientError`] whose `Display` is one line a person can act on
//! ("no daemon at PATH (connection refused): start one with …", "the daemon did not answer
//! within 5 s"). A refusal (`ok: false`) is a [`Response`], not an error, and the connection
//! stays usable; after a `ClientError`, drop the client (a late answer may still be in flight).

use crate::control::proto::{Request, Response};
use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long [`Client::call`] waits for an answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest reply line accepted (a flow listing of a few million connections fits).
const MAX_REPLY: u64 = 1 << 30;

/// A connection to a daemon's control socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    timeout: Duration,
}

/// A response together with its `data` exactly as the daemon wrote it, for `--json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The parsed response.
    pub response: Response,
    /// The `data` member's JSON text, byte for byte as received (`null` when absent).
    pub data_json: String,
}

/// Why a call to the daemon failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens at the path (no socket file, or a stale one).
    NoDaemon {
        /// The socket path tried.
        path: PathBuf,
        /// "connection refused", "no such socket", …
        why: String,
    },
    /// The socket exists but connecting failed otherwise (permission, not a socket, …).
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon did not answer in time.
    Timeout {
        /// How long we waited.
        after: Duration,
    },
    /// The daemon closed the connection (it stopped, or restarted).
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// Reading or writing failed.
    Io {
        /// "sending the request", "reading the answer".
        doing: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon answered something that is not a response (or not the data asked for).
    BadReply {
        /// What is wrong with it.
        why: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoDaemon { path, why } => write!(
                f,
                "no daemon at {} ({why}): start one with sluice run --config FILE, or name its socket with --socket",
                path.display()
            ),
            ClientError::Connect { path, source } if source.kind() == ErrorKind::PermissionDenied => write!(
                f,
                "cannot connect to {} (permission denied): the control socket is mode 0600, run as the daemon's user",
                path.display()
            ),
            ClientError::Connect { path, source } => {
                write!(f, "cannot connect to {}: {source}", path.display())
            }
            ClientError::Timeout { after } => {
                write!(f, "the daemon did not answer within {}", seconds(*after))
            }
            ClientError::Closed { path } => {
                write!(f, "the daemon at {} closed the connection", path.display())
            }
            ClientError::Io { doing, source } => write!(f, "{doing}: {source}"),
            ClientError::BadReply { why } => write!(f, "the daemon's answer is not understood: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } | ClientError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// "5 s", "0.2 s".
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{} s", d.as_secs()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

/// The part of a response line read before its `data` is parsed.
#[derive(serde::Deserialize)]
struct RawResponse<'a> {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    bad_input: bool,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

impl Client {
    /// Connects to the daemon listening at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        Self::connect_with_timeout(path, DEFAULT_TIMEOUT)
    }

    /// Connects, with `timeout` for each answer (and each request's write) instead of 5 s.
    pub fn connect_with_timeout(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| {
            let why = match source.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::NotFound => Some("no such socket"),
                _ => None,
            };
            match why {
                Some(why) => ClientError::NoDaemon { path: path.to_owned(), why: why.to_owned() },
                None => ClientError::Connect { path: path.to_owned(), source },
            }
        })?;
        let io = |source| ClientError::Connect { path: path.to_owned(), source };
        // A zero timeout means "none" to the OS; keep at least a millisecond.
        let timeout = timeout.max(Duration::from_millis(1));
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Client { path: path.to_owned(), reader: BufReader::new(stream), writer, timeout })
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` and returns the daemon's response (which may be a refusal: `ok` false).
    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.exchange(request).map(|reply| reply.response)
    }

    /// [`Client::call`], also giving the `data` text exactly as received.
    pub fn exchange(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let mut line = serde_json::to_string(request)
            .map_err(|e| ClientError::BadReply { why: format!("cannot encode the request: {e}") })?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| self.io_error("sending the request", source))?;
        let mut answer = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY)
            .read_until(b'\n', &mut answer)
            .map_err(|source| self.io_error("reading the answer", source))?;
        if n == 0 {
            return Err(ClientError::Closed { path: self.path.clone() });
        }
        if answer.last() != Some(&b'\n') {
            return Err(if n as u64 >= MAX_REPLY {
                ClientError::BadReply { why: format!("longer than {MAX_REPLY} bytes") }
            } else {
                ClientError::Closed { path: self.path.clone() }
            });
        }
        parse_reply(&answer)
    }

    /// Maps a read or write error, naming a timeout and a closed peer for what they are.
    fn io_error(&self, doing: &'static str, source: std::io::Error) -> ClientError {
        match source.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ClientError::Timeout { after: self.timeout },
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {
                ClientError::Closed { path: self.path.clone() }
            }
            _ => ClientError::Io { doing, source },
        }
    }
}

/// Parses one response line (with or without its newline).
pub fn parse_reply(line: &[u8]) -> Result<Reply, ClientError> {
    let text = std::str::from_utf8(line).map_err(|_| ClientError::BadReply { why: "not UTF-8".into() })?;
    let raw: RawResponse<'_> = serde_json::from_str(text.trim_end())
        .map_err(|e| ClientError::BadReply { why: format!("not a response ({e})") })?;
    let data_json = raw.data.map_or_else(|| "null".to_owned(), |d| d.get().to_owned());
    let data = serde_json::from_str(&data_json)
        .map_err(|e| ClientError::BadReply { why: format!("its data is not JSON ({e})") })?;
    Ok(Reply {
        response: Response { ok: raw.ok, error: raw.error, bad_input: raw.bad_input, data },
        data_json,
    })
}
