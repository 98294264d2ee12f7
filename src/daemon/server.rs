//! The daemon's two listeners: the control socket (Unix, mode 0600, one JSON request per line)
//! and the Prometheus endpoint (HTTP on a loopback address). Each connection gets a thread that
//! hands requests to the main loop over a channel and writes back the answer; the engine itself
//! is only ever touched by the main loop.

use crate::control::proto::{Request, Response};
use anyhow::Context;
use crossbeam_channel::{Sender, bounded};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Binds the control socket (a stale one is replaced, a live one refused) and serves it.
pub fn control(path: &Path, calls: Sender<Envelope>) -> anyhow::Result<SocketGuard> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
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
    std::thread::Builder::new().name("control".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let calls = calls.clone();
            let _ = std::thread::Builder::new()
                .name("control-conn".into())
                .spawn(move || serve_control(conn, &calls));
        }
    })?;
    Ok(guard)
}

fn serve_control(conn: UnixStream, calls: &Sender<Envelope>) {
    let Ok(mut writer) = conn.try_clone() else { return };
    let reader = BufReader::new(conn);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match ask(calls, Call::Control(req)) {
                Some(Answer::Control(r)) => r,
                _ => Response::err("the daemon is shutting down"),
            },
            Err(e) => Response::err(format!("bad request: {e}")),
        };
        let Ok(mut text) = serde_json::to_string(&resp) else { return };
        text.push('\n');
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// Serves `GET /metrics` on `addr`.
pub fn metrics(addr: SocketAddr, calls: Sender<Envelope>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let first = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
            let path = first.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if first.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
                match ask(&calls, Call::Metrics) {
                    Some(Answer::Metrics(t)) => ("200 OK", t),
                    _ => ("503 Service Unavailable", "the daemon is shutting down\n".to_string()),
                }
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    })?;
    Ok(bound)
}
