//! The demo without root: the whole appliance over in-memory wires, with a scripted client and
//! two scripted servers speaking TCP to it, frame by frame. Each frame is printed as it enters
//! or leaves a port, with who forwarded it: the slow path (host) or the NIC's flow table.

use crate::config;
use crate::control::proto::FlowFilter;
use crate::daemon::report;
use sim_model::clock::{Clock, ManualClock};
use slowpath::emit;
use slowpath::emit::L2;
use slowpath::engine::Engine;
use slowpath::packet::{self, L4};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

const CONFIG: &str = r#"
[host]
tap = false
[[port]]
name = "p0"
addresses = ["10.10.1.1/24"]
[[port]]
name = "p1"
addresses = ["10.10.2.254/24"]
[[neighbor]]
address = "10.10.1.10"
mac = "02:00:00:00:01:10"
[[neighbor]]
address = "10.10.2.11"
mac = "02:00:00:00:02:11"
[[neighbor]]
address = "10.10.2.12"
mac = "02:00:00:00:02:12"
[[service]]
vip = "10.10.1.100:80"
scheduler = "rr"
local_addresses = ["10.10.2.1"]
[[service.backend]]
address = "10.10.2.11:80"
[[service.backend]]
address = "10.10.2.12:80"
"#;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];

fn tcp(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, data: &[u8], l2: L2) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&src.port().to_be_bytes());
    seg[2..4].copy_from_slice(&dst.port().to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&29200u16.to_be_bytes());
    seg.extend_from_slice(data);
    emit::frame(&l2, &emit::ip_packet(src.ip(), dst.ip(), 6, 64, seg, 16))
}

fn describe(frame: &[u8]) -> String {
    let Ok(p) = packet::parse(frame) else { return "?".into() };
    let Some(ip) = p.ip() else { return "non-IP".into() };
    let (sp, dp) = p.ports().unwrap_or((0, 0));
    let flags = p.tcp_flags();
    let mut f = String::new();
    for (bit, name) in [(0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST")] {
        if flags & bit != 0 {
            f.push_str(if f.is_empty() { "" } else { "+" });
            f.push_str(name);
        }
    }
    let len = match p.l4 {
        L4::Tcp { header_len, .. } => (ip.end - ip.l4).saturating_sub(header_len),
        _ => 0,
    };
    let data = if len > 0 { format!(" {len} bytes") } else { String::new() };
    format!("{} > {} {f}{data}", SocketAddr::new(ip.src, sp), SocketAddr::new(ip.dst, dp))
}

struct Script {
    engine: Engine,
    wires: Vec<sim_model::port::MemoryPortHandle>,
    clock: Arc<ManualClock>,
    log: String,
}

impl Script {
    /// Sends `frame` into `port`; returns what left each port, logging all of it.
    fn send(&mut self, port: usize, frame: Vec<u8>) -> Vec<Vec<Vec<u8>>> {
        self.clock.advance(1_000_000);
        let before = self.slowpath_packets();
        let _ = writeln!(self.log, "  p{port} in   {}", describe(&frame));
        self.wires[port].push_rx(frame, None);
        crate::replay::settle(&mut self.engine, self.clock.now_ns());
        let by = if self.slowpath_packets() > before { "slow path" } else { "NIC flow table" };
        let out: Vec<Vec<Vec<u8>>> =
            self.wires.iter().map(sim_model::port::MemoryPortHandle::take_tx).collect();
        for (p, frames) in out.iter().enumerate() {
            for f in frames {
                let _ = writeln!(self.log, "  p{p} out  {}   [{by}]", describe(f));
            }
        }
        out
    }

    fn slowpath_packets(&self) -> u64 {
        self.engine
            .workers()
            .iter()
            .map(|w| w.stats().packets.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}

/// Runs the in-memory demo.
pub fn run() -> anyhow::Result<String> {
    let cfg = config::parse(CONFIG, "demo.toml").map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let (engine, wires) = crate::replay::build(&cfg, &clock)?;
    let mut s = Script { engine, wires, clock, log: String::new() };
    let vip: SocketAddr = "10.10.1.100:80".parse()?;
    let p0 = L2 { dst: config::Mac::for_port_index(0).0, src: CLIENT_MAC, vlan: None };
    for n in 0..3u16 {
        let client: SocketAddr = format!("10.10.1.10:{}", 40000 + n).parse()?;
        let _ = writeln!(s.log, "Connection {} from {client} to the VIP {vip}:", n + 1);
        let out = s.send(0, tcp(client, vip, 100, 0, 0x02, b"", p0));
        let Some(syn) = out[1].first() else { anyhow::bail!("the SYN did not reach a server") };
        let p = packet::parse(syn).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let ip = p.ip().copied().ok_or_else(|| anyhow::anyhow!("not IP"))?;
        let (lport, rport) = p.ports().unwrap_or((0, 0));
        let (lip, rs) = (SocketAddr::new(ip.src, lport), SocketAddr::new(ip.dst, rport));
        let rs_mac = if rs.ip() == "10.10.2.12".parse::<IpAddr>()? {
            [2, 0, 0, 0, 2, 0x12]
        } else {
            [2, 0, 0, 0, 2, 0x11]
        };
        let p1 = L2 { dst: config::Mac::for_port_index(1).0, src: rs_mac, vlan: None };
        s.send(1, tcp(rs, lip, 5000, 101, 0x12, b"", p1));
        s.send(0, tcp(client, vip, 101, 5001, 0x10, b"", p0));
        s.send(0, tcp(client, vip, 101, 5001, 0x18, b"GET / HTTP/1.1\r\n\r\n", p0));
        let body = format!("HTTP/1.1 200 OK\r\n\r\nhello from {rs}, you are {lip}\n");
        s.send(1, tcp(rs, lip, 5001, 119, 0x18, body.as_bytes(), p1));
    }
    let flows = report::flows(&mut s.engine, &FlowFilter::default());
    let st = s.engine.stats();
    let _ = writeln!(s.log, "\nFlows (each server saw the LIP, never the client: FullNAT):");
    for f in &flows.flows {
        let _ = writeln!(
            s.log,
            "  {} {:<11} {} -> {} via {} -> {}  [{}]  packets {}/{}",
            f.protocol, f.state, f.client, f.vip, f.lip, f.backend, f.location, f.packets_in, f.packets_out
        );
    }
    let _ = writeln!(
        s.log,
        "\nCounters: {} connections, {} offloaded to the NIC; the NIC forwarded {} packets on hits, the slow path handled {} (the handshakes).",
        st.workers.iter().map(|w| w.created).sum::<u64>(),
        st.workers.iter().map(|w| w.offloaded).sum::<u64>(),
        st.nic.hits,
        st.workers.iter().map(|w| w.packets).sum::<u64>(),
    );
    Ok(s.log)
}
