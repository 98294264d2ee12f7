//! `[[probe]]`: end-to-end checks of VIPs from this node, run as a client would (a kernel
//! socket, routed by the host: in a cluster, out through the router and back to whichever node
//! it picks). A thread per probe sleeps between checks; each check's outcome, its latency and
//! the probe's rise-and-fall state are kept for `sluice services` and the metrics. A probe
//! only observes: nothing in the datapath depends on it.

use crate::control::proto::ProbeInfo;
use crossbeam_channel::{Receiver, Sender};
use slowpath::health::{HealthState, check_once};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The running probes.
pub struct Prober {
    stop: Option<Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    status: Arc<Mutex<Vec<ProbeInfo>>>,
}

impl Prober {
    /// Starts one thread per probe; `None` when there are none.
    pub fn start(probes: &[crate::config::Probe]) -> Option<Self> {
        if probes.is_empty() {
            return None;
        }
        let status: Vec<ProbeInfo> = probes
            .iter()
            .map(|p| ProbeInfo {
                name: p.name.clone(),
                target: p.target.to_string(),
                kind: crate::config::probe_kind(&p.check).into(),
                up: true,
                ..ProbeInfo::default()
            })
            .collect();
        let status = Arc::new(Mutex::new(status));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let threads = probes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let (p, stop, status) = (p.clone(), stop_rx.clone(), status.clone());
                std::thread::Builder::new()
                    .name(format!("probe {}", p.name))
                    .spawn(move || run(i, &p, &stop, &status))
                    .ok()
            })
            .collect();
        Some(Prober { stop: Some(stop_tx), threads, status })
    }

    /// Every probe's state now, in configuration order.
    pub fn status(&self) -> Vec<ProbeInfo> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops every probe and waits for the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the sender wakes every sleeping thread.
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(i: usize, p: &crate::config::Probe, stop: &Receiver<()>, status: &Mutex<Vec<ProbeInfo>>) {
    let check = super::setup::health_check(&p.check);
    let mut state = HealthState::new(check.rise, check.fall);
    loop {
        let started = Instant::now();
        let result = check_once(p.target, &check);
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let ok = result.is_ok();
        let reason = result.unwrap_or_else(|e| e);
        if let Some(up) = state.record(ok) {
            let word = if up { "up" } else { "down" };
            tracing::warn!(probe = %p.name, target = %p.target, %reason, "probe is {word}");
        }
        if let Ok(mut s) = status.lock() {
            if let Some(s) = s.get_mut(i) {
                s.up = state.up;
                s.checks += 1;
                s.failures += u64::from(!ok);
                s.last_us = if ok { us } else { 0 };
                s.last = reason;
            }
        }
        match stop.recv_timeout(check.interval) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn a_probe_follows_its_target() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let check = crate::config::Health {
            kind: crate::config::HealthKind::Tcp,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(200),
            rise: 1,
            fall: 2,
        };
        let probes = [crate::config::Probe { name: "vip".into(), target: addr, check }];
        let p = Prober::start(&probes).expect("one probe");
        let wait = |want: &dyn Fn(&ProbeInfo) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !want(&p.status()[0]) {
                assert!(Instant::now() < deadline, "{:?}", p.status());
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        wait(&|s| s.checks >= 2 && s.up && s.last == "connected");
        drop(l);
        wait(&|s| !s.up && s.failures >= 2);
        assert_eq!(p.status()[0].kind, "tcp");
        p.stop();
        assert!(Prober::start(&[]).is_none());
    }
}
