//! Announcing the node's VIPs and LIPs through a local BIRD (`[routing]`): what is announced
//! and when, the thread that tells BIRD, and what `sluice cluster` and the metrics show.
//!
//! A VIP is announced while at least one service on its address has a server up (health
//! checks, weight aside) and the NIC is up; the services' LIPs while the NIC is up (with
//! `announce_lips`), and the `[sync]` peers' LIPs as backup routes at the lowest priority
//! (kind `backup`: MED 9 and nine AS-path prepends), so a dead peer's LIPs move here. The daemon's loop computes that set ([`wanted`]) at most every 50 ms and
//! hands a changed one to the [`Announcer`]'s thread, which writes the include file and asks
//! BIRD to `configure` (see [`bird`]), so a withdrawal reaches BIRD in tens of milliseconds.
//! If the daemon dies, even by SIGKILL, its host interfaces go with it and the routers'
//! BFD (or the short hold time) withdraws everything the node announced.
//!
//! A BIRD that cannot be reached is logged once, counted (`sluice_routing_bird_failures_total`,
//! `sluice_routing_bird_up 0`) and tried again every second; forwarding does not wait for it.

pub mod bird;
pub mod cli;

use crate::config::Routing;
use bird::{Announce, Bird, Protocol};
use serde::{Deserialize, Serialize};
use slowpath::service::ServiceTable;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one exchange with BIRD may take.
const BIRD_TIMEOUT: Duration = Duration::from_secs(2);
/// Between retries while BIRD is away, and between status refreshes.
const RETRY: Duration = Duration::from_secs(1);
/// The daemon's loop recomputes the announcements at most this often.
const RECHECK: Duration = Duration::from_millis(50);

/// The routes the node should announce now.
pub fn wanted(r: &Routing, services: &ServiceTable, datapath_up: bool) -> Vec<Announce> {
    if !datapath_up {
        return Vec::new();
    }
    let mut set = BTreeSet::new();
    for s in &services.services {
        let vip = s.config.key.vip.ip();
        if s.backends.iter().any(|b| b.up) {
            set.insert(Announce { address: vip, kind: "vip".into(), priority: r.priority(&vip) });
        }
        if r.announce_lips {
            for lip in &s.config.local_addresses {
                set.insert(Announce { address: *lip, kind: "lip".into(), priority: 0 });
            }
        }
    }
    if r.announce_lips {
        // The sync peers' LIPs, least preferred: the router uses them only once the owner's
        // route is gone, and the connections the owner synced go on here.
        for lip in &r.backup_lips {
            set.insert(Announce {
                address: *lip,
                kind: "backup".into(),
                priority: crate::config::BACKUP_PRIORITY,
            });
        }
    }
    set.into_iter().collect()
}

/// What `sluice cluster` shows (the `data` of its reply, as `--json` prints it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterReply {
    /// BIRD's control socket.
    pub bird_socket: String,
    /// This node's AS number.
    pub asn: u32,
    /// Whether the last exchange with BIRD worked.
    pub bird_up: bool,
    /// Why it did not, when it did not.
    pub last_error: Option<String>,
    /// Exchanges with BIRD that failed.
    pub bird_failures: u64,
    /// Times BIRD was given a new set of routes.
    pub updates: u64,
    /// What BIRD was last told to announce.
    pub announced: Vec<Announce>,
    /// What the node wants announced (differs from `announced` while BIRD is away).
    pub wanted: Vec<Announce>,
    /// BIRD's protocols whose names start with `sluice_` (the sessions, BFD, static routes).
    pub protocols: Vec<Protocol>,
    /// `[sync]`'s state (`None` without `[sync]`).
    #[serde(default)]
    pub sync: Option<crate::sync::SyncStatus>,
}

/// The thread that tells BIRD, and what it last saw.
pub struct Announcer {
    routing: Routing,
    tx: crossbeam_channel::Sender<Msg>,
    status: Arc<Mutex<ClusterReply>>,
    thread: Option<std::thread::JoinHandle<()>>,
    last: Option<Vec<Announce>>,
    checked: Option<(u64, bool, Instant)>,
}

enum Msg {
    Set(Vec<Announce>),
    Stop(crossbeam_channel::Sender<()>),
}

impl Announcer {
    /// Starts the thread; nothing is announced until the first [`Announcer::tick`].
    pub fn start(routing: Routing) -> std::io::Result<Announcer> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let status = Arc::new(Mutex::new(ClusterReply {
            bird_socket: routing.bird_socket.display().to_string(),
            asn: routing.asn,
            bird_up: true,
            ..ClusterReply::default()
        }));
        let (r, st) = (routing.clone(), status.clone());
        let thread = std::thread::Builder::new().name("bird".into()).spawn(move || worker(&r, &rx, &st))?;
        Ok(Announcer { routing, tx, status, thread: Some(thread), last: None, checked: None })
    }

    /// The announcer `[routing]` asks for, started; `None` without `[routing]`.
    pub fn for_config(cfg: &crate::config::Config) -> anyhow::Result<Option<Announcer>> {
        use anyhow::Context as _;
        cfg.routing.clone().map(|r| Announcer::start(r).context("starting the BIRD announcer")).transpose()
    }

    /// Called by the daemon's loop: recomputes the announcements (at most every 50 ms, and
    /// only when the services or the NIC's state changed) and hands a changed set over.
    pub fn tick(&mut self, services: &ServiceTable, datapath_up: bool) {
        let now = Instant::now();
        if let Some((version, up, at)) = self.checked
            && (now.duration_since(at) < RECHECK || (version == services.version && up == datapath_up))
        {
            return;
        }
        self.checked = Some((services.version, datapath_up, now));
        let w = wanted(&self.routing, services, datapath_up);
        if self.last.as_ref() != Some(&w) {
            self.last = Some(w.clone());
            let _ = self.tx.send(Msg::Set(w));
        }
    }

    /// What `sluice cluster` shows.
    pub fn status(&self) -> ClusterReply {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Prometheus text for the announcements and BIRD's state.
    pub fn metrics(&self) -> String {
        let st = self.status();
        let mut s = String::new();
        s.push_str("# HELP sluice_routing_bird_up Whether the last exchange with BIRD worked.\n");
        s.push_str("# TYPE sluice_routing_bird_up gauge\n");
        let _ = writeln!(s, "sluice_routing_bird_up {}", u8::from(st.bird_up));
        s.push_str("# HELP sluice_routing_bird_failures_total Exchanges with BIRD that failed.\n");
        s.push_str("# TYPE sluice_routing_bird_failures_total counter\n");
        let _ = writeln!(s, "sluice_routing_bird_failures_total {}", st.bird_failures);
        s.push_str("# HELP sluice_routing_updates_total Route sets BIRD was given.\n");
        s.push_str("# TYPE sluice_routing_updates_total counter\n");
        let _ = writeln!(s, "sluice_routing_updates_total {}", st.updates);
        s.push_str("# HELP sluice_routing_announced Routes BIRD was told to announce (1 per route).\n");
        s.push_str("# TYPE sluice_routing_announced gauge\n");
        for a in &st.announced {
            let _ = writeln!(
                s,
                "sluice_routing_announced{{prefix=\"{}\",kind=\"{}\",priority=\"{}\"}} 1",
                a.prefix(),
                a.kind,
                a.priority
            );
        }
        s.push_str("# HELP sluice_routing_session_up BGP sessions established (1) or not (0).\n");
        s.push_str("# TYPE sluice_routing_session_up gauge\n");
        for p in st.protocols.iter().filter(|p| p.proto == "BGP") {
            let up = u8::from(p.state == "up" && p.info.starts_with("Established"));
            let _ = writeln!(s, "sluice_routing_session_up{{protocol=\"{}\"}} {up}", p.name);
        }
        s
    }

    /// Withdraws everything (a clean stop), waiting up to a second for BIRD to take it.
    pub fn stop(mut self) {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let _ = self.tx.send(Msg::Set(Vec::new()));
        let _ = self.tx.send(Msg::Stop(done_tx));
        let _ = done.recv_timeout(Duration::from_secs(1));
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}

/// The thread: applies the latest set, retries while BIRD is away, refreshes the status.
fn worker(r: &Routing, rx: &crossbeam_channel::Receiver<Msg>, status: &Mutex<ClusterReply>) {
    let mut wanted: Vec<Announce> = Vec::new();
    let mut applied: Option<Vec<Announce>> = None;
    let mut conn: Option<Bird> = None;
    loop {
        let mut stop = None;
        match rx.recv_timeout(RETRY) {
            Ok(Msg::Set(w)) => wanted = w,
            Ok(Msg::Stop(done)) => stop = Some(done),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        // Only the latest set matters.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Set(w) => wanted = w,
                Msg::Stop(done) => stop = Some(done),
            }
        }
        let result = exchange(r, &mut conn, &wanted, &mut applied);
        if let Ok(mut st) = status.lock() {
            st.wanted.clone_from(&wanted);
            match result {
                Ok((protocols, updated)) => {
                    if !st.bird_up {
                        tracing::warn!(socket = %st.bird_socket, "BIRD is back: routes announced again");
                    }
                    st.bird_up = true;
                    st.last_error = None;
                    st.protocols = protocols;
                    st.updates += u64::from(updated);
                    st.announced = applied.clone().unwrap_or_default();
                }
                Err(e) => {
                    conn = None;
                    applied = None;
                    st.bird_failures += 1;
                    if st.bird_up {
                        tracing::error!(
                            socket = %st.bird_socket,
                            error = %e,
                            "BIRD is unreachable: routes cannot be announced or withdrawn; retrying every second, forwarding goes on"
                        );
                    }
                    st.bird_up = false;
                    st.last_error = Some(e);
                    st.protocols.clear();
                }
            }
        }
        if let Some(done) = stop {
            let _ = done.send(());
            return;
        }
    }
}

/// One round with BIRD: (re)connects, applies `wanted` if BIRD does not have it, reads the
/// protocols. Returns them and whether a new set was applied.
fn exchange(
    r: &Routing,
    conn: &mut Option<Bird>,
    wanted: &[Announce],
    applied: &mut Option<Vec<Announce>>,
) -> Result<(Vec<Protocol>, bool), String> {
    if conn.is_none() {
        *conn = Some(Bird::connect(&r.bird_socket, BIRD_TIMEOUT).map_err(|e| format!("connect: {e}"))?);
    }
    let b = conn.as_mut().ok_or("no connection")?;
    let mut updated = false;
    if applied.as_deref() != Some(wanted) {
        bird::write_include(&r.include_file, &bird::include_text(r, wanted))
            .map_err(|e| format!("writing {}: {e}", r.include_file.display()))?;
        b.configure().map_err(|e| format!("configure: {e}"))?;
        *applied = Some(wanted.to_vec());
        updated = true;
    }
    let protocols = b.protocols().map_err(|e| format!("show protocols: {e}"))?;
    Ok((protocols.into_iter().filter(|p| p.name.starts_with("sluice_")).collect(), updated))
}

#[cfg(test)]
mod tests;
