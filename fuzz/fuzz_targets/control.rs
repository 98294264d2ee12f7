//! The control socket's protocol: request lines as the daemon reads them (split at newlines,
//! lossy UTF-8, blank lines skipped, `serde_json` into a `Request`), then the run-time checks a
//! change request goes through (`service_at_run_time`, `backend_at_run_time`,
//! `weight_at_run_time`) against the example configuration.
//!
//! Input: the bytes a client writes (several lines).
//!
//! Invariants:
//! - every line is a request or an error, never a panic;
//! - a request round-trips: written back as JSON it is one line and reads as the same request;
//! - an error's response (`bad request: ...`) is one line on the wire and reads back as a
//!   refusal of bad input (`ok: false`, `bad_input: true`, an error message);
//! - a run-time check's error is one line; what it accepts is what was asked (the VIP and
//!   backend addresses as given, the weight given).
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use libfuzzer_sys::fuzz_target;
use sluice::config::{self, Config};
use sluice::control::proto::{Request, Response};
use std::net::SocketAddr;
use std::sync::OnceLock;

fn example() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| config::parse(config::EXAMPLE, "example.toml").expect("the example parses"))
}

fn one_line(what: &str, text: &str) {
    assert!(!text.is_empty() && !text.contains('\n'), "{what} not one line: {text:?}");
}

/// What a run-time check said: accepted values are checked by the caller, errors here.
fn checked<T>(what: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            one_line(what, &e);
            None
        }
    }
}

fn run_time_checks(req: &Request) {
    let cfg = example();
    let svc = &cfg.services[0];
    match req {
        Request::ServiceAdd(spec) => {
            let got = config::service_at_run_time(
                cfg,
                &spec.vip,
                &spec.protocol,
                &spec.scheduler,
                (&spec.forward, spec.nat_gateway.as_deref()),
                &spec.local_addresses,
                spec.conn_limit,
                spec.synproxy,
                spec.proxy_protocol.as_deref(),
            );
            if let Some(s) = checked("service_add", got) {
                assert_eq!(Some(s.vip), spec.vip.parse::<SocketAddr>().ok(), "another VIP than asked");
                assert_eq!(s.conn_limit, spec.conn_limit);
                assert_eq!(s.synproxy, spec.synproxy);
                assert_eq!(s.proxy_protocol, spec.proxy_protocol, "another PROXY protocol than asked");
                assert!(s.backends.is_empty());
            }
        }
        Request::BackendAdd { address, weight, .. } => {
            if let Some(b) = checked("backend_add", config::backend_at_run_time(cfg, svc, address, *weight)) {
                assert_eq!(Some(b.address), address.parse::<SocketAddr>().ok(), "another address than asked");
                assert_eq!(u32::from(b.weight), *weight);
            }
        }
        Request::BackendSet { weight, .. } => {
            if let Some(w) = checked("backend_set", config::weight_at_run_time(*weight)) {
                assert_eq!(u32::from(w), *weight);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Request>(&text) {
            Ok(req) => {
                let back = serde_json::to_string(&req).expect("a request serializes");
                one_line("a request", &back);
                assert_eq!(serde_json::from_str::<Request>(&back).ok().as_ref(), Some(&req), "{back}");
                run_time_checks(&req);
            }
            Err(e) => {
                let wire = serde_json::to_string(&Response::invalid(format!("bad request: {e}"))).unwrap();
                one_line("a response", &wire);
                let r: Response = serde_json::from_str(&wire).expect("a response reads back");
                assert!(!r.ok && r.bad_input && r.error.is_some_and(|m| !m.is_empty()), "{wire}");
            }
        }
    }
});
