//! The text the operator reads: `sluice services` in `ipvsadm -L -n`'s layout (and
//! `--stats` in `ipvsadm -L -n --stats`'s), `sluice flows` in `ipvsadm -L -n -c`'s with
//! DPVS's worker and local address, `sluice stats` in sections. Pure functions from the
//! protocol's replies to strings; `--json` never comes here.
//!
//! Conventions: columns are as wide as their widest cell (never narrower than ipvsadm's),
//! so long IPv6 endpoints widen a column instead of shifting the rest; no line ends in
//! spaces; endpoints are printed as `10.10.1.100:80` / `[fd00::1]:80` whatever the daemon
//! wrote; bytes in the flow table are human (1024-based, one decimal: `1.2K`, `15.0M`),
//! every other count exact.

use crate::control::proto::{FlowsReply, ServicesReply, StatsReply};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// How a column's cells are padded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Align {
    /// Text, padded on the right.
    Left,
    /// Numbers, padded on the left.
    Right,
}

/// Each column's width: its widest cell, at least `min`.
pub fn widths(rows: &[Vec<String>], min: &[usize]) -> Vec<usize> {
    let mut w = min.to_vec();
    for row in rows {
        if w.len() < row.len() {
            w.resize(row.len(), 0);
        }
        for (i, cell) in row.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    w
}

/// One table line: cells padded to `widths`, separated by one space, no trailing spaces.
pub fn line(cells: &[String], widths: &[usize], aligns: &[Align]) -> String {
    line_sep(cells, widths, aligns, " ")
}

/// [`line()`] with another separator (two spaces where headers have several words).
pub fn line_sep(cells: &[String], widths: &[usize], aligns: &[Align], sep: &str) -> String {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        let w = widths.get(i).copied().unwrap_or(0);
        match aligns.get(i).copied().unwrap_or(Align::Left) {
            Align::Left => {
                let _ = write!(out, "{cell:<w$}");
            }
            Align::Right => {
                let _ = write!(out, "{cell:>w$}");
            }
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// An endpoint as an operator reads it: `10.10.1.100:80`, `[fd00::1]:80`; what is not an
/// `address:port` (a bare LIP) is printed as written.
pub fn endpoint(s: &str) -> String {
    s.parse::<SocketAddr>().map_or_else(|_| s.to_owned(), |a| a.to_string())
}

/// Bytes for a person: exact below 1024, else 1024-based with one decimal and K, M, G, T, P
/// or E (`1.2K`, `15.0M`).
#[allow(clippy::cast_precision_loss)] // One decimal of a display value.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96K would print as "1024.0K": go up a unit once the rounded value reaches 1024.
    while v >= 1023.95 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// Milliseconds as ipvsadm's expire column: `mm:ss`, minutes not capped (`10080:00`),
/// seconds truncated.
pub fn mm_ss(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// Seconds as `04:05:06`, or `3d 04:05:06` from a day on.
pub fn uptime(s: u64) -> String {
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 { format!("{d}d {h:02}:{m:02}:{sec:02}") } else { format!("{h:02}:{m:02}:{sec:02}") }
}

/// `TCP`, `UDP` (ipvsadm's Prot column), from the protocol's lower-case names.
fn prot(p: &str) -> String {
    p.to_ascii_uppercase()
}

/// A service's first line: `TCP  10.10.1.100:80 wrr` and its flags: the LIPs, the connection
/// limit and PROXY protocol when set (`lip 10.10.2.1,10.10.2.2 limit 10000 proxy-protocol v2`).
fn service_line(s: &crate::control::proto::ServiceInfo) -> String {
    let mut out = format!("{:<4} {} {}", prot(&s.protocol), endpoint(&s.vip), s.scheduler);
    if !s.local_addresses.is_empty() {
        let lips: Vec<String> = s.local_addresses.iter().map(|a| endpoint(a)).collect();
        let _ = write!(out, " lip {}", lips.join(","));
    }
    if s.conn_limit > 0 {
        let _ = write!(out, " limit {}", s.conn_limit);
    }
    if let Some(pp) = &s.proxy_protocol {
        let _ = write!(out, " proxy-protocol {pp}");
    }
    out
}

/// `sluice services`: `ipvsadm -L -n` with a Health column; Forward is always FullNat.
pub fn services(reply: &ServicesReply) -> String {
    const ALIGN: [Align; 6] = [Align::Left; 6];
    let header: Vec<String> =
        ["RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn", "Health"]
            .map(String::from)
            .to_vec();
    let mut rows = vec![header];
    for s in &reply.services {
        for b in &s.backends {
            rows.push(vec![
                endpoint(&b.address),
                forward_of(&s.forward).ipvs_word().into(),
                b.weight.to_string(),
                b.active.to_string(),
                b.inactive.to_string(),
                b.health.clone(),
            ]);
        }
    }
    let w = widths(&rows, &[28, 7, 6, 10, 9, 0]);
    let mut out = String::from("Prot LocalAddress:Port Scheduler Flags\n");
    let _ = writeln!(out, "  -> {}", line(&rows[0], &w, &ALIGN));
    let mut next = rows.iter().skip(1);
    for s in &reply.services {
        out.push_str(&service_line(s));
        out.push('\n');
        for row in next.by_ref().take(s.backends.len()) {
            let _ = writeln!(out, "  -> {}", line(row, &w, &ALIGN));
        }
    }
    if !reply.probes.is_empty() {
        out.push_str(
            "Probes
",
        );
        for p in &reply.probes {
            let state = if p.up { "up" } else { "down" };
            let took = if p.last_us > 0 {
                format!(" in {}.{:03} ms", p.last_us / 1000, p.last_us % 1000)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} {} {} {state}: {} checks, {} failed; last {}{took}",
                p.name, p.kind, p.target, p.checks, p.failures, p.last
            );
        }
    }
    out
}

/// `sluice services --rate`: `ipvsadm -L -n --rate`: connections, packets and bytes per second
/// in and out, per service (the sum of its servers) and per server, over the daemon's last
/// reporting interval, host path and NIC together.
pub fn services_rate(reply: &ServicesReply) -> String {
    const ALIGN: [Align; 6] =
        [Align::Left, Align::Right, Align::Right, Align::Right, Align::Right, Align::Right];
    let cells = |r: &crate::control::proto::TrafficRate| {
        [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps].map(|n| n.to_string())
    };
    let mut rows: Vec<Vec<String>> = vec![
        ["Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"].map(String::from).to_vec(),
        vec!["  -> RemoteAddress:Port".into()],
    ];
    for s in &reply.services {
        let mut row = vec![format!("{:<4} {}", prot(&s.protocol), endpoint(&s.vip))];
        row.extend(cells(&s.rate));
        rows.push(row);
        for b in &s.backends {
            let mut row = vec![format!("  -> {}", endpoint(&b.address))];
            row.extend(cells(&b.rate));
            rows.push(row);
        }
    }
    let w = widths(&rows, &[33, 8, 8, 8, 8, 8]);
    let mut out = String::new();
    for row in &rows {
        out.push_str(&line(row, &w, &ALIGN));
        out.push('\n');
    }
    out
}

/// `sluice services --stats`: `ipvsadm -L -n --stats`: connections scheduled, packets and
/// bytes in and out per service (the sum of its servers) and per server, host path and NIC
/// together. Bytes are human unless `exact`.
pub fn services_stats(reply: &ServicesReply, exact: bool) -> String {
    const ALIGN: [Align; 6] =
        [Align::Left, Align::Right, Align::Right, Align::Right, Align::Right, Align::Right];
    let bytes = |n: u64| if exact { n.to_string() } else { human(n) };
    let mut rows: Vec<Vec<String>> = vec![
        ["Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]
            .map(String::from)
            .to_vec(),
        vec!["  -> RemoteAddress:Port".into()],
    ];
    for s in &reply.services {
        let sum = |f: fn(&crate::control::proto::BackendInfo) -> u64| s.backends.iter().map(f).sum::<u64>();
        rows.push(vec![
            format!("{:<4} {}", prot(&s.protocol), endpoint(&s.vip)),
            s.total_connections.to_string(),
            sum(|b| b.packets_in).to_string(),
            sum(|b| b.packets_out).to_string(),
            bytes(sum(|b| b.bytes_in)),
            bytes(sum(|b| b.bytes_out)),
        ]);
        for b in &s.backends {
            rows.push(vec![
                format!("  -> {}", endpoint(&b.address)),
                b.connections.to_string(),
                b.packets_in.to_string(),
                b.packets_out.to_string(),
                bytes(b.bytes_in),
                bytes(b.bytes_out),
            ]);
        }
    }
    let w = widths(&rows, &[33, 8, 8, 8, 8, 8]);
    let mut out = String::new();
    for row in &rows {
        out.push_str(&line(row, &w, &ALIGN));
        out.push('\n');
    }
    out.push_str("(host path and NIC together; the NIC's offloaded flows are read once a second)\n");
    out
}

/// A forwarding mode as the daemon names it; FullNAT for a name this CLI does not know (an
/// older daemon sends none).
fn forward_of(word: &str) -> slowpath::service::Forward {
    slowpath::service::Forward::parse(word).unwrap_or_default()
}

/// `sluice flows`: `ipvsadm -L -n -c` with DPVS's worker (`[w]`) and local address, where
/// the flow is forwarded (`nic` or `host`), packets in/out and bytes in/out; a footer
/// `N of TOTAL connections` when the list is shorter than the total.
pub fn flows(reply: &FlowsReply) -> String {
    use Align::Left as L;
    const ALIGN: [Align; 12] = [L; 12];
    let mut rows: Vec<Vec<String>> = vec![
        [
            "[w]",
            "pro",
            "expire",
            "state",
            "source",
            "virtual",
            "local",
            "destination",
            "where",
            "forward",
            "packets",
            "bytes",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for f in &reply.flows {
        rows.push(vec![
            format!("[{}]", f.worker),
            prot(&f.protocol),
            mm_ss(f.expire_ms),
            f.state.clone(),
            endpoint(&f.client),
            endpoint(&f.vip),
            // No local address without FullNAT: the server sees the client.
            if forward_of(&f.forward).uses_lip() { endpoint(&f.lip) } else { "-".into() },
            endpoint(&f.backend),
            f.location.clone(),
            forward_of(&f.forward).ipvs_word().into(),
            format!("{}/{}", f.packets_in, f.packets_out),
            format!("{}/{}", human(f.bytes_in), human(f.bytes_out)),
        ]);
    }
    let w = widths(&rows, &[3, 3, 6, 11, 19, 18, 18, 18, 5, 7, 12, 0]);
    let mut out = String::new();
    for row in &rows {
        out.push_str(&line(row, &w, &ALIGN));
        out.push('\n');
    }
    if reply.flows.len() < reply.total {
        let _ = writeln!(out, "{} of {} connections", reply.flows.len(), reply.total);
    }
    out
}

/// A `label  value  note` line.
type Item<'a> = (&'a str, String, String);

/// Titled lists of items, labels left and values right aligned in one column across all
/// of them, so the whole page reads down one edge.
fn sections(out: &mut String, sections: &[(&str, Vec<Item<'_>>)]) {
    let items = || sections.iter().flat_map(|(_, items)| items);
    let lw = items().map(|(l, ..)| l.chars().count()).max().unwrap_or(0);
    let vw = items().map(|(_, v, _)| v.chars().count()).max().unwrap_or(0);
    for (title, items) in sections {
        let _ = writeln!(out, "\n{title}");
        for (label, value, note) in items {
            let text = format!("  {label:<lw$}  {value:>vw$}  {note}");
            let _ = writeln!(out, "{}", text.trim_end());
        }
    }
}

/// A share as a percentage with one decimal, "-" of nothing.
#[allow(clippy::cast_precision_loss)] // One decimal of a display value.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "-".into() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// The non-zero entries of a by-reason map, largest first, or one "none" line.
fn by_reason(map: &std::collections::BTreeMap<String, u64>) -> Vec<Item<'_>> {
    let mut v: Vec<(&String, &u64)> = map.iter().filter(|(_, n)| **n > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if v.is_empty() {
        return vec![("none", String::new(), String::new())];
    }
    v.into_iter().map(|(k, n)| (k.as_str(), n.to_string(), String::new())).collect()
}

/// The line `sluice stats` prints while the NIC is lost; empty while it is up.
fn device_lost_line(d: &crate::control::proto::DeviceState) -> String {
    if d.state != "lost" {
        return String::new();
    }
    let give_up = if d.give_up_s == 0 {
        "never gives up".to_string()
    } else {
        format!("gives up after {} s", d.give_up_s)
    };
    format!(
        "NIC      LOST for {} s, {} attempt(s) to bring it back, last: {} (the daemon {give_up})\n",
        d.lost_for_s, d.attempts, d.last_error
    )
}

/// The slow path's lines of `sluice stats`.
fn slowpath_rows(sp: &crate::control::proto::SlowpathStats) -> Vec<(&'static str, String, String)> {
    let n = |v: u64| v.to_string();
    let none = String::new;
    vec![
        ("packets", n(sp.packets), none()),
        ("forwarded", n(sp.forwarded), "(rewritten and sent by the host)".into()),
        ("connections created", n(sp.created), none()),
        ("connections expired", n(sp.expired), none()),
        ("connections offloaded", n(sp.offloaded), none()),
        ("connections now", n(sp.connections), none()),
        ("offloaded now", n(sp.offloaded_now), format!("({})", percent(sp.offloaded_now, sp.connections))),
        ("half-open now", n(sp.half_open), none()),
        ("SYN cookies sent", n(sp.syn_cookies), format!("({} returned valid)", n(sp.syn_cookies_accepted))),
        (
            "SYN proxy mismatches",
            n(sp.synproxy_mismatch),
            "(servers without the promised timestamps or window scale)".into(),
        ),
        (
            "PROXY headers sent",
            n(sp.proxy_protocol_headers),
            format!("({} sent again)", n(sp.proxy_protocol_retransmits)),
        ),
        ("TOA options inserted", n(sp.toa_inserted), format!("({} without room)", n(sp.toa_no_room))),
    ]
}

/// `sluice stats`: the device, the ports, the NIC's counters, punts and drops by reason
/// (non-zero ones only), the flow table, the slow path, the rates and connections per VIP.
pub fn stats(s: &StatsReply) -> String {
    let n = |v: u64| v.to_string();
    let none = String::new;
    let mut out = format!(
        "device   {}\nuptime   {} ({} s)\nworkers  {}\n",
        s.device,
        uptime(s.uptime_s),
        s.uptime_s,
        s.workers
    );
    out.push_str(&device_lost_line(&s.device_state));

    let mut rows = vec![
        ["name", "link", "rx packets", "rx bytes", "tx packets", "tx bytes", "drops"]
            .map(String::from)
            .to_vec(),
    ];
    for p in &s.ports {
        rows.push(vec![
            p.name.clone(),
            if p.link { "up" } else { "down" }.into(),
            n(p.rx_packets),
            n(p.rx_bytes),
            n(p.tx_packets),
            n(p.tx_bytes),
            n(p.drops),
        ]);
    }
    let align =
        [Align::Left, Align::Left, Align::Right, Align::Right, Align::Right, Align::Right, Align::Right];
    let port_widths = widths(&rows, &[]);
    out.push_str("\nports\n");
    for row in &rows {
        let _ = writeln!(out, "  {}", line_sep(row, &port_widths, &align, "  "));
    }

    let lookups = s.nic.hits + s.nic.misses;
    let nic = vec![
        ("rx packets", n(s.nic.rx_packets), none()),
        ("tx packets", n(s.nic.tx_packets), "(on hits)".into()),
        ("hits", n(s.nic.hits), format!("({} of lookups)", percent(s.nic.hits, lookups))),
        ("misses", n(s.nic.misses), none()),
        ("punts", n(s.nic.punts), "(to the host)".into()),
        ("drops", n(s.nic.drops), none()),
        ("injected", n(s.nic.injected), "(sent for the host)".into()),
        ("events lost", n(s.nic.events_lost), none()),
    ];
    let t = &s.table;
    let table = vec![
        (
            "occupancy",
            format!("{} / {}", t.occupancy, t.capacity),
            format!("({})", percent(t.occupancy.into(), t.capacity.into())),
        ),
        ("installs", n(t.installs), none()),
        ("insert failures", n(t.insert_failures), "(table full: kept on the host)".into()),
        ("removes", n(t.removes), none()),
        ("moves", n(t.moves), "(cuckoo)".into()),
        ("command errors", n(t.command_errors), none()),
        ("recoveries", n(t.recoveries), "(device lost and brought back)".into()),
        ("recovery failures", n(t.recovery_failures), "(attempts that failed)".into()),
    ];
    let slowpath = slowpath_rows(&s.slowpath);
    let rate = |v: f64| format!("{v:.1}");
    let rates = vec![
        ("connections", rate(s.rates.connections), none()),
        ("nic packets", rate(s.rates.nic_packets), none()),
        ("slow-path packets", rate(s.rates.slowpath_packets), none()),
        ("installs", rate(s.rates.installs), none()),
    ];
    let mut vips: Vec<(&String, &u64)> = s.vips.iter().collect();
    vips.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut vips: Vec<Item<'_>> = vips.into_iter().map(|(k, v)| (k.as_str(), n(*v), none())).collect();
    if vips.is_empty() {
        vips.push(("none", none(), none()));
    }
    sections(
        &mut out,
        &[
            ("nic", nic),
            ("punts by reason", by_reason(&s.punts)),
            ("nic drops by reason", by_reason(&s.nic_drops)),
            ("slow-path drops by reason", by_reason(&s.slowpath_drops)),
            ("flow table", table),
            ("slow path", slowpath),
            ("rates (per second)", rates),
            ("connections by vip", vips),
        ],
    );
    out
}
