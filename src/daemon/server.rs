//! The daemon's two listeners: the control socket (Unix, mode 0600, one JSON request per line)
//! and the Prometheus endpoint (HTTP on a loopback address). Each connection gets a thread
//! that hands requests to the main loop over a channel and writes back the answer; the engine
//! itself is only ever touched by the main loop.
//!
//! Both listeners are bounded, so no client (a hostile local user, a stuck script) can stall
//! them or grow the daemon: at most [`CONTROL_CONNECTIONS`] / [`METRICS_CONNECTIONS`] at once
//! (a new client makes room by closing the one idle longest, so the operator's `sluice stats`
//! always gets in), a request must arrive whole within a deadline once it has started (a byte
//! every few seconds does not hold a connection), it may not exceed a size, and a control
//! connection idle for [`CONTROL_IDLE`] is closed. A client over a limit gets one line saying
//! which.

use crate::control::proto::{Request, Response};
use anyhow::Context;
use crossbeam_channel::{Sender, bounded};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Control connections served at once.
pub const CONTROL_CONNECTIONS: usize = 64;
/// The longest control request line.
pub const CONTROL_LINE_MAX: usize = 1 << 20;
/// A control connection with no request for this long is closed (`sluice top` asks every
/// second or so).
pub const CONTROL_IDLE: Duration = Duration::from_secs(60);
/// A request, once its first byte arrived, must be complete within this.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Metrics connections served at once.
pub const METRICS_CONNECTIONS: usize = 16;
/// The longest HTTP request head the metrics endpoint reads.
pub const METRICS_HEAD_MAX: usize = 8192;
/// Stack of a connection thread: they parse a line and wait on a channel.
const CONN_STACK: usize = 256 << 10;

/// What a listener asks of the main loop.
pub enum Call {
    /// A control request.
    Control(Request),
    /// The metrics text.
    Metrics,
}

/// The main loop's answer.
pub enum Answer {
    /// To a control request.
    Control(Response),
    /// The metrics text.
    Metrics(String),
}

/// A call with the channel its answer goes back on.
pub type Envelope = (Call, Sender<Answer>);

/// Removes the control socket when the daemon stops.
pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ask(calls: &Sender<Envelope>, call: Call) -> Option<Answer> {
    let (tx, rx) = bounded(1);
    calls.send((call, tx)).ok()?;
    rx.recv_timeout(Duration::from_secs(30)).ok()
}

/// A stream the listener can close from another thread, telling its client why in the
/// listener's own protocol.
trait Closable: Send {
    fn close(&self, why: &str);
}

impl<T: Closable + Sync> Closable for Arc<T> {
    fn close(&self, why: &str) {
        (**self).close(why);
    }
}

/// How long telling an evicted client why may take (it may not be reading).
const TELL_TIMEOUT: Duration = Duration::from_millis(50);

impl Closable for UnixStream {
    fn close(&self, why: &str) {
        let _ = self.set_write_timeout(Some(TELL_TIMEOUT));
        if let Ok(mut text) = serde_json::to_string(&Response::err(why)) {
            text.push('\n');
            let _ = (&*self).write_all(text.as_bytes());
        }
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Closable for TcpStream {
    fn close(&self, why: &str) {
        let _ = self.set_write_timeout(Some(TELL_TIMEOUT));
        let body = format!("{why}\n");
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = (&*self).write_all(resp.as_bytes());
        let _ = self.shutdown(Shutdown::Both);
    }
}

struct Slot {
    id: u64,
    /// The last time this connection finished a request (or was accepted).
    active: Instant,
    /// A request of it is with the main loop now.
    busy: bool,
    stream: Box<dyn Closable>,
    /// What the client is told when its connection is closed to make room.
    evicted: &'static str,
}

/// The connections a listener serves at once.
struct Slots {
    max: usize,
    live: Mutex<Vec<Slot>>,
    next: AtomicU64,
}

/// A connection's place in its [`Slots`]; released when the connection thread ends.
struct Admitted {
    slots: Arc<Slots>,
    id: u64,
}

impl Slots {
    fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots { max, live: Mutex::new(Vec::with_capacity(max)), next: AtomicU64::new(0) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a place for a new connection, closing the one idle longest when every place is
    /// taken (one not waiting for an answer if there is such).
    fn admit(self: &Arc<Self>, stream: Box<dyn Closable>, evicted: &'static str) -> Admitted {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut live = self.lock();
        if live.len() >= self.max {
            let victim =
                live.iter().enumerate().min_by_key(|(_, s)| (s.busy, s.active)).map_or(0, |(i, _)| i);
            let s = live.swap_remove(victim);
            tracing::debug!(reason = s.evicted, "closing a connection to make room");
            s.stream.close(s.evicted);
        }
        live.push(Slot { id, active: Instant::now(), busy: false, stream, evicted });
        Admitted { slots: self.clone(), id }
    }
}

impl Admitted {
    fn mark(&self, busy: bool) {
        if let Some(s) = self.slots.lock().iter_mut().find(|s| s.id == self.id) {
            s.busy = busy;
            s.active = Instant::now();
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.slots.lock().retain(|s| s.id != self.id);
    }
}

/// Binds the control socket (a stale one is replaced, a live one refused, any other file left
/// alone and refused) and serves it.
pub fn control(path: &Path, calls: Sender<Envelope>) -> anyhow::Result<SocketGuard> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket; refusing to replace it", path.display());
        }
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another daemon is listening on {}; stop it or set [control] socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    let guard = SocketGuard(path.to_path_buf());
    let slots = Slots::new(CONTROL_CONNECTIONS);
    std::thread::Builder::new().name("control".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            // One descriptor per connection, shared by its thread and the listener (which may
            // close it to make room).
            let conn = Arc::new(conn);
            let admitted = slots
                .admit(Box::new(conn.clone()), "too many control connections: this one was idle longest");
            let calls = calls.clone();
            let spawned = std::thread::Builder::new()
                .name("control-conn".into())
                .stack_size(CONN_STACK)
                .spawn(move || serve_control(&conn, &calls, &admitted));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no thread for a control connection");
            }
        }
    })?;
    Ok(guard)
}

/// Why a request line could not be read.
enum LineEnd {
    /// The client closed the connection (or it was closed to make room).
    Closed,
    /// No request started within the idle time.
    Idle,
    /// A request started and was not complete within the deadline.
    Slow,
    /// A request longer than allowed.
    TooLong,
}

/// Reads the next line (without its newline) from `conn` into `line`, leaving what follows in
/// `pending`: waiting at most `idle` for it to start and `deadline` for it to end once
/// started, and refusing lines over `max` bytes.
fn read_line(
    mut conn: &UnixStream,
    pending: &mut Vec<u8>,
    line: &mut Vec<u8>,
    max: usize,
    idle: Duration,
    deadline: Duration,
) -> Result<(), LineEnd> {
    let mut started = (!pending.is_empty()).then(Instant::now);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            line.clear();
            line.extend_from_slice(&pending[..nl]);
            pending.drain(..=nl);
            return Ok(());
        }
        if pending.len() > max {
            return Err(LineEnd::TooLong);
        }
        let wait = match started {
            None => idle,
            Some(t) => deadline.checked_sub(t.elapsed()).ok_or(LineEnd::Slow)?,
        };
        let _ = conn.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match conn.read(&mut buf) {
            Ok(0) => return Err(LineEnd::Closed),
            Ok(n) => {
                started.get_or_insert_with(Instant::now);
                pending.extend_from_slice(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(if started.is_some() { LineEnd::Slow } else { LineEnd::Idle });
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(LineEnd::Closed),
        }
    }
}

fn write_response(mut writer: &UnixStream, resp: &Response) -> bool {
    let Ok(mut text) = serde_json::to_string(resp) else { return false };
    text.push('\n');
    let _ = writer.set_write_timeout(Some(REQUEST_DEADLINE));
    writer.write_all(text.as_bytes()).is_ok()
}

fn serve_control(conn: &UnixStream, calls: &Sender<Envelope>, admitted: &Admitted) {
    let mut pending = Vec::new();
    let mut line = Vec::new();
    loop {
        let got = read_line(conn, &mut pending, &mut line, CONTROL_LINE_MAX, CONTROL_IDLE, REQUEST_DEADLINE);
        let refusal = match got {
            Ok(()) => None,
            Err(LineEnd::Closed) => return,
            Err(LineEnd::Idle) => {
                Some(format!("closing an idle connection (no request in {} s)", CONTROL_IDLE.as_secs()))
            }
            Err(LineEnd::Slow) => Some(format!(
                "request not complete within {} s of its first byte",
                REQUEST_DEADLINE.as_secs()
            )),
            Err(LineEnd::TooLong) => Some(format!("request longer than {CONTROL_LINE_MAX} bytes")),
        };
        if let Some(why) = refusal {
            write_response(conn, &Response::invalid(why));
            return;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        admitted.mark(true);
        let resp = match serde_json::from_str::<Request>(&text) {
            Ok(req) => match ask(calls, Call::Control(req)) {
                Some(Answer::Control(r)) => r,
                _ => Response::err("the daemon is shutting down"),
            },
            Err(e) => Response::invalid(format!("bad request: {e}")),
        };
        admitted.mark(false);
        if !write_response(conn, &resp) {
            return;
        }
    }
}

/// Serves `GET /metrics` on `addr`.
pub fn metrics(addr: SocketAddr, calls: Sender<Envelope>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let bound = listener.local_addr()?;
    let slots = Slots::new(METRICS_CONNECTIONS);
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let conn = Arc::new(conn);
            let admitted = slots.admit(Box::new(conn.clone()), "too many metrics connections");
            let calls = calls.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-conn".into())
                .stack_size(CONN_STACK)
                .spawn(move || serve_metrics(&conn, &calls, &admitted));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no thread for a metrics connection");
            }
        }
    })?;
    Ok(bound)
}

/// Reads an HTTP request head (to its blank line) within [`REQUEST_DEADLINE`] of the
/// connection's start, at most [`METRICS_HEAD_MAX`] bytes. `Err` carries the status to answer.
fn read_head(mut conn: &TcpStream) -> Result<Vec<u8>, &'static str> {
    let start = Instant::now();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > METRICS_HEAD_MAX {
            return Err("431 Request Header Fields Too Large");
        }
        let left = REQUEST_DEADLINE.checked_sub(start.elapsed()).ok_or("408 Request Timeout")?;
        let _ = conn.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("408 Request Timeout");
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err("400 Bad Request"),
        }
    }
    Ok(head)
}

fn serve_metrics(mut conn: &TcpStream, calls: &Sender<Envelope>, admitted: &Admitted) {
    let (status, body) = match read_head(conn) {
        Err(status) => (status, format!("{status}\n")),
        Ok(head) => {
            let first = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
            let path = first.split_whitespace().nth(1).unwrap_or("");
            if first.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
                admitted.mark(true);
                match ask(calls, Call::Metrics) {
                    Some(Answer::Metrics(t)) => ("200 OK", t),
                    _ => ("503 Service Unavailable", "the daemon is shutting down\n".to_string()),
                }
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            }
        }
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.set_write_timeout(Some(REQUEST_DEADLINE));
    let _ = conn.write_all(resp.as_bytes());
}
