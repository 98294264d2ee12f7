//! Health checks of real servers: a TCP connect or an HTTP GET per server, every `interval`,
//! with keepalived's rise and fall. A server starts up; `fall` failed checks in a row take it
//! down, `rise` good ones bring it back. Each change is logged and sent to the engine's owner
//! as a [`Transition`], which takes the server out of its scheduler or puts it back
//! ([`crate::engine::Engine::set_health`]).
//!
//! Checks are ordinary kernel sockets: on an appliance they leave through the host's
//! interface of the port that routes to the server (its TAP), from that port's address, as the
//! design has it. Each target has a thread of its own, which sleeps between checks; stopping
//! the checker wakes them all at once.

use crate::service::{HealthCheck, HealthKind, ServiceKey};
use crossbeam_channel::{Receiver, Sender};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A server to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its service.
    pub service: ServiceKey,
    /// The server.
    pub backend: SocketAddr,
    /// How the server is checked (TCP connect or HTTP GET).
    pub check: HealthCheck,
    /// The state it is in now (a checker restarted after a change goes on from there).
    pub up: bool,
}

/// A server changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Its service.
    pub service: ServiceKey,
    /// The server.
    pub backend: SocketAddr,
    /// Up now (or down).
    pub up: bool,
    /// The last check's result, for the log ("connected", "connection refused", "HTTP 503").
    pub reason: String,
}

/// Rise and fall over a sequence of check results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    /// Up now.
    pub up: bool,
    oks: u32,
    fails: u32,
    rise: u32,
    fall: u32,
}

impl HealthState {
    /// A server that starts up.
    pub fn new(rise: u32, fall: u32) -> Self {
        HealthState { up: true, oks: 0, fails: 0, rise: rise.max(1), fall: fall.max(1) }
    }

    /// Records a check; returns the new state when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.oks = self.oks.saturating_add(1);
            self.fails = 0;
            if !self.up && self.oks >= self.rise {
                self.up = true;
                return Some(true);
            }
        } else {
            self.fails = self.fails.saturating_add(1);
            self.oks = 0;
            if self.up && self.fails >= self.fall {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

/// One check of `backend`: `Ok(what)` when it passes, `Err(why)` when not.
pub fn check_once(backend: SocketAddr, check: &HealthCheck) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&backend, check.timeout).map_err(|e| e.to_string())?;
    match &check.kind {
        HealthKind::Tcp => Ok("connected".into()),
        HealthKind::Http { path, expect, host } => {
            s.set_read_timeout(Some(check.timeout)).map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(check.timeout)).map_err(|e| e.to_string())?;
            let host = host.clone().unwrap_or_else(|| backend.to_string());
            let req = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: sluice-health\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            let mut head = [0u8; 64];
            let mut n = 0;
            while n < 12 {
                match s.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(e.to_string()),
                }
            }
            let line = String::from_utf8_lossy(&head[..n]);
            let status: Option<u16> = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            match status {
                Some(c) if c == *expect => Ok(format!("HTTP {c}")),
                Some(c) => Err(format!("HTTP {c}, expected {expect}")),
                None => Err(format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or(""))),
            }
        }
    }
}

/// Running checks.
pub struct HealthChecker {
    stop: Option<Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    events: Receiver<Transition>,
}

impl HealthChecker {
    /// Starts a thread per target.
    pub fn start(targets: Vec<Target>) -> Self {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (tx, events) = crossbeam_channel::unbounded();
        let threads = targets
            .into_iter()
            .filter_map(|t| {
                let (stop, tx) = (stop_rx.clone(), tx.clone());
                std::thread::Builder::new()
                    .name(format!("health {}", t.backend))
                    .spawn(move || run(&t, &stop, &tx))
                    .ok()
            })
            .collect();
        HealthChecker { stop: Some(stop_tx), threads, events }
    }

    /// The transitions, as they happen.
    pub fn events(&self) -> &Receiver<Transition> {
        &self.events
    }

    /// Stops every check and waits for the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the sender wakes every sleeping thread with `Disconnected`.
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(t: &Target, stop: &Receiver<()>, tx: &Sender<Transition>) {
    let mut state = HealthState::new(t.check.rise, t.check.fall);
    state.up = t.up;
    loop {
        let result = check_once(t.backend, &t.check);
        let ok = result.is_ok();
        let reason = result.unwrap_or_else(|e| e);
        if let Some(up) = state.record(ok) {
            if up {
                tracing::warn!(service = %t.service, server = %t.backend, %reason, "real server is up");
            } else {
                tracing::warn!(service = %t.service, server = %t.backend, %reason, "real server is down");
            }
            if tx.send(Transition { service: t.service, backend: t.backend, up, reason }).is_err() {
                return;
            }
        }
        match stop.recv_timeout(t.check.interval) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// A check's defaults (keepalived's): every second, a second to answer, rise 2, fall 3.
pub fn default_check(kind: HealthKind) -> HealthCheck {
    HealthCheck { kind, interval: Duration::from_secs(1), timeout: Duration::from_secs(1), rise: 2, fall: 3 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Proto;
    use std::net::TcpListener;

    #[test]
    fn rise_and_fall() {
        let mut s = HealthState::new(2, 3);
        assert!(s.up);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None, "a good check resets the failures");
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(false), "three failures in a row");
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(true), "two good in a row");
    }

    fn fast(kind: HealthKind) -> HealthCheck {
        HealthCheck {
            kind,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(200),
            rise: 2,
            fall: 2,
        }
    }

    #[test]
    fn a_tcp_check_follows_a_real_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(check_once(addr, &fast(HealthKind::Tcp)).is_ok());
        let key = ServiceKey { vip: "10.0.0.1:80".parse().unwrap(), proto: Proto::Tcp };
        let hc = HealthChecker::start(vec![Target {
            service: key,
            backend: addr,
            check: fast(HealthKind::Tcp),
            up: true,
        }]);
        drop(l);
        let t = hc.events().recv_timeout(Duration::from_secs(5)).expect("down");
        assert!(!t.up);
        assert!(t.reason.contains("refused"), "{}", t.reason);
        let l = TcpListener::bind(addr).unwrap();
        let t = hc.events().recv_timeout(Duration::from_secs(5)).expect("up again");
        assert!(t.up);
        hc.stop();
        drop(l);
    }

    #[test]
    fn an_http_check_wants_its_status() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for (i, s) in l.incoming().take(2).enumerate() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /health HTTP/1.0\r\n"));
                let status = if i == 0 { "200 OK" } else { "503 Service Unavailable" };
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).unwrap();
            }
        });
        let check = fast(HealthKind::Http { path: "/health".into(), expect: 200, host: None });
        assert_eq!(check_once(addr, &check), Ok("HTTP 200".into()));
        assert_eq!(check_once(addr, &check), Err("HTTP 503, expected 200".into()));
        server.join().unwrap();
    }
}
