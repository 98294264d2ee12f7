//! Traffic figures, host path and NIC together: the reporting interval's tick (which reads the
//! NIC's counter bank once, O(servers), and measures rates), ipvsadm's `--rate` columns per
//! server and per service, and the Prometheus families that count both paths in one family with
//! the path as a label.

use super::report::family;
use crate::control::proto::{Rates, ServerRate, ServicesReply, TrafficRate};
use slowpath::engine::Engine;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The reporting interval: the counter bank is read and rates are measured once per interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A server: (VIP, protocol, address), as the replies write them.
type ServerId = (String, String, String);

/// Per-second rates from successive counters, measured once per [`INTERVAL`].
pub struct RateMeter {
    at: Instant,
    last: [u64; 4],
    /// The daemon-wide rates (`sluice stats`).
    pub rates: Rates,
    /// Each server's totals at the last tick: connections, packets in/out, bytes in/out.
    last_servers: HashMap<ServerId, [u64; 5]>,
    /// Each server's rates over the last interval.
    servers: HashMap<ServerId, TrafficRate>,
}

impl RateMeter {
    /// A meter whose first interval starts now.
    pub fn new(engine: &mut Engine) -> Self {
        let mut m = RateMeter {
            at: Instant::now(),
            last: Self::sample(engine),
            rates: Rates::default(),
            last_servers: HashMap::new(),
            servers: HashMap::new(),
        };
        m.last_servers = Self::sample_servers(engine);
        m
    }

    fn sample(engine: &mut Engine) -> [u64; 4] {
        let st = engine.stats();
        let created = st.workers.iter().map(|w| w.created).sum();
        let packets = st.workers.iter().map(|w| w.packets).sum();
        [created, st.nic.hits, packets, st.table.installs]
    }

    /// Every server's totals, host path and NIC together.
    fn sample_servers(engine: &Engine) -> HashMap<ServerId, [u64; 5]> {
        let mut out = HashMap::new();
        for s in &engine.services().services {
            for b in &s.backends {
                let st = &b.stats;
                let v = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                out.insert(
                    (
                        s.config.key.vip.to_string(),
                        s.config.key.proto.as_str().to_string(),
                        b.addr.to_string(),
                    ),
                    [
                        v(&st.connections),
                        v(&st.packets_in) + v(&st.nic_packets_in),
                        v(&st.packets_out) + v(&st.nic_packets_out),
                        v(&st.bytes_in) + v(&st.nic_bytes_in),
                        v(&st.bytes_out) + v(&st.nic_bytes_out),
                    ],
                );
            }
        }
        out
    }

    /// Once per [`INTERVAL`]: reads the NIC's counter bank into the servers' counters (one bulk
    /// read, whatever the number of flows) and measures the rates.
    pub fn tick(&mut self, engine: &mut Engine) {
        let dt = self.at.elapsed();
        if dt < INTERVAL {
            return;
        }
        if let Err(e) = engine.read_counter_banks() {
            tracing::debug!(error = %e, "reading the NIC's counter bank failed; retried next interval");
        }
        let now = Self::sample(engine);
        let s = dt.as_secs_f64();
        // Rates of counters that grow by far less than 2^52 a second: exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        let rate = |i: usize| now[i].saturating_sub(self.last[i]) as f64 / s;
        self.rates = Rates {
            connections: rate(0),
            nic_packets: rate(1),
            slowpath_packets: rate(2),
            installs: rate(3),
        };
        self.last = now;
        let servers = Self::sample_servers(engine);
        self.servers = servers
            .iter()
            .map(|(id, v)| {
                let before = self.last_servers.get(id).copied().unwrap_or(*v);
                #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
                let per_s = |i: usize| (v[i].saturating_sub(before[i]) as f64 / s).round() as u64;
                let r = TrafficRate {
                    cps: per_s(0),
                    in_pps: per_s(1),
                    out_pps: per_s(2),
                    in_bps: per_s(3),
                    out_bps: per_s(4),
                };
                (id.clone(), r)
            })
            .collect();
        self.last_servers = servers;
        self.at = Instant::now();
    }

    /// Puts the last interval's rates into a services reply: each server's, and each service's
    /// as the sum of its servers'.
    pub fn fill(&self, reply: &mut ServicesReply) {
        for s in &mut reply.services {
            let mut sum = TrafficRate::default();
            for b in &mut s.backends {
                let id = (s.vip.clone(), s.protocol.clone(), b.address.clone());
                b.rate = self.servers.get(&id).copied().unwrap_or_default();
                sum.cps += b.rate.cps;
                sum.in_pps += b.rate.in_pps;
                sum.out_pps += b.rate.out_pps;
                sum.in_bps += b.rate.in_bps;
                sum.out_bps += b.rate.out_bps;
            }
            s.rate = sum;
        }
    }

    /// Every server's rates, ordered by VIP, protocol and address (for `sluice top`).
    pub fn servers(&self) -> Vec<ServerRate> {
        let mut out: Vec<ServerRate> = self
            .servers
            .iter()
            .map(|((vip, protocol, backend), rate)| ServerRate {
                vip: vip.clone(),
                protocol: protocol.clone(),
                backend: backend.clone(),
                rate: *rate,
            })
            .collect();
        out.sort_by(|a, b| (&a.vip, &a.protocol, &a.backend).cmp(&(&b.vip, &b.protocol, &b.backend)));
        out
    }
}

/// The families that count the host path and the NIC together, the path as a label:
/// `sluice_backend_packets_total`, `sluice_backend_bytes_total`, `sluice_service_packets_total`,
/// `sluice_service_bytes_total`, each with `direction="in"|"out"` and `path="host"|"nic"`.
pub fn metrics(o: &mut String, svc: &ServicesReply) {
    // (in total, out total, in NIC, out NIC) of a server.
    type Split = fn(&crate::control::proto::BackendInfo) -> [u64; 4];
    let kinds: [(&str, &str, Split); 2] = [
        ("packets", "Packets forwarded", |b| {
            [b.packets_in, b.packets_out, b.nic_packets_in, b.nic_packets_out]
        }),
        ("bytes", "Bytes (IP length) forwarded", |b| {
            [b.bytes_in, b.bytes_out, b.nic_bytes_in, b.nic_bytes_out]
        }),
    ];
    for (kind, what, split) in kinds {
        family(
            o,
            &format!("backend_{kind}_total"),
            "counter",
            &format!(
                "{what}, per real server, direction (in: to it) and path (host: the slow path; nic: offloaded flows)."
            ),
        );
        for s in &svc.services {
            for b in &s.backends {
                let v = split(b);
                for (dir, total, nic) in [("in", v[0], v[2]), ("out", v[1], v[3])] {
                    for (path, n) in [("host", total - nic), ("nic", nic)] {
                        let _ = writeln!(
                            o,
                            "sluice_backend_{kind}_total{{vip=\"{}\",protocol=\"{}\",backend=\"{}\",direction=\"{dir}\",path=\"{path}\"}} {n}",
                            s.vip, s.protocol, b.address
                        );
                    }
                }
            }
        }
        family(
            o,
            &format!("service_{kind}_total"),
            "counter",
            &format!("{what}, per virtual service (the sum of its servers), direction and path."),
        );
        for s in &svc.services {
            let mut sum = [0u64; 4];
            for b in &s.backends {
                for (acc, v) in sum.iter_mut().zip(split(b)) {
                    *acc += v;
                }
            }
            for (dir, total, nic) in [("in", sum[0], sum[2]), ("out", sum[1], sum[3])] {
                for (path, n) in [("host", total - nic), ("nic", nic)] {
                    let _ = writeln!(
                        o,
                        "sluice_service_{kind}_total{{vip=\"{}\",protocol=\"{}\",direction=\"{dir}\",path=\"{path}\"}} {n}",
                        s.vip, s.protocol
                    );
                }
            }
        }
    }
}
