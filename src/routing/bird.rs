//! BIRD 2, from the daemon's side: its control-socket protocol (what `birdc` speaks) and the
//! configuration fragment the daemon writes for it to include.
//!
//! The protocol: BIRD greets with `0001 BIRD 2.x ready.`; a client writes one command line
//! and reads reply lines `CODE-text` (more follows), `CODE text` (the last) or ` text` (more
//! of the previous code), where codes 8000 and up are errors. BIRD has no command that adds
//! or removes a route, so routes reach it as a file: [`include_text`] writes the node's
//! static routes, the filters that map a VIP's priority to BGP attributes, the BFD
//! protocol and one BGP session per peer, and `configure` makes BIRD reread its
//! configuration (which includes the file), changing only what changed.

use crate::config::Routing;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A connection to BIRD's control socket.
pub struct Bird {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// One reply line: its code and its text.
pub type Line = (u16, String);

impl Bird {
    /// Connects and reads the greeting; every read and write waits `timeout` at most.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Bird> {
        let writer = UnixStream::connect(path)?;
        writer.set_read_timeout(Some(timeout))?;
        writer.set_write_timeout(Some(timeout))?;
        let mut b = Bird { reader: BufReader::new(writer.try_clone()?), writer };
        let greeting = b.reply()?;
        match greeting.first() {
            Some((1, _)) => Ok(b),
            other => Err(io::Error::other(format!("not BIRD's greeting: {other:?}"))),
        }
    }

    /// Sends `command` and returns its reply lines; a reply with an error code (8000 and up)
    /// is an error holding BIRD's words.
    pub fn command(&mut self, command: &str) -> io::Result<Vec<Line>> {
        self.writer.write_all(format!("{command}\n").as_bytes())?;
        let lines = self.reply()?;
        match lines.iter().find(|(code, _)| *code >= 8000) {
            Some((code, text)) => Err(io::Error::other(format!("BIRD said {code} {}", text.trim()))),
            None => Ok(lines),
        }
    }

    fn reply(&mut self) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        let mut code = 0u16;
        loop {
            let mut l = String::new();
            if self.reader.read_line(&mut l)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "BIRD closed the connection"));
            }
            let l = l.trim_end_matches('\n');
            let b = l.as_bytes();
            if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b'-' || b[4] == b' ') {
                code = l[..4].parse().unwrap_or(0);
                lines.push((code, l[5..].to_string()));
                if b[4] == b' ' {
                    return Ok(lines);
                }
            } else if b.len() == 4 && b.iter().all(u8::is_ascii_digit) {
                lines.push((l.parse().unwrap_or(0), String::new()));
                return Ok(lines);
            } else {
                lines.push((code, l.strip_prefix(' ').unwrap_or(l).to_string()));
            }
        }
    }

    /// `configure`: BIRD rereads its configuration (and the daemon's include file).
    pub fn configure(&mut self) -> io::Result<()> {
        self.command("configure").map(|_| ())
    }

    /// `show protocols`: every protocol's name, kind, state and info.
    pub fn protocols(&mut self) -> io::Result<Vec<Protocol>> {
        Ok(parse_protocols(&self.command("show protocols")?))
    }
}

/// A line of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Protocol {
    /// Its name (`sluice_peer0`, …).
    pub name: String,
    /// `BGP`, `BFD`, `Static`, …
    pub proto: String,
    /// `up`, `start`, `down`, …
    pub state: String,
    /// BIRD's words: `Established`, `Active  Socket: Connection refused`, …
    pub info: String,
}

/// The protocols of a `show protocols` reply (code 1002 lines).
pub fn parse_protocols(lines: &[Line]) -> Vec<Protocol> {
    lines
        .iter()
        .filter(|(code, _)| *code == 1002)
        .filter_map(|(_, text)| {
            let t: Vec<&str> = text.split_whitespace().collect();
            if t.len() < 4 {
                return None;
            }
            // Since is one token (`14:00:01.123`) or two (`2026-12-05 14:00:01`).
            let skip =
                if t.get(4).is_some_and(|s| s.contains('-')) && t.get(5).is_some_and(|s| s.contains(':')) {
                    6
                } else {
                    5
                };
            Some(Protocol {
                name: t[0].into(),
                proto: t[1].into(),
                state: t[3].into(),
                info: t.get(skip..).map(|r| r.join(" ")).unwrap_or_default(),
            })
        })
        .collect()
}

/// What the node announces: one host route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Announce {
    /// The address (announced as /32 or /128).
    pub address: IpAddr,
    /// `vip`, `lip`, or `backup` (a sync peer's LIP).
    pub kind: String,
    /// 0 (most preferred) ..= 9; LIPs are always 0, backups 9.
    pub priority: u8,
}

impl Announce {
    /// `10.99.0.100/32`, `fd00::100/128`.
    pub fn prefix(&self) -> String {
        format!("{}/{}", self.address, if self.address.is_ipv4() { 32 } else { 128 })
    }
}

/// The BIRD configuration fragment for `routes` under `r` (see the module's documentation;
/// the README's "Running a cluster" shows one).
pub fn include_text(r: &Routing, routes: &[Announce]) -> String {
    let mut s = String::from(
        "# Written by `sluice run` ([routing] include_file) and rewritten on every change: do not edit.\n",
    );
    for (name, v4) in [("sluice_v4", true), ("sluice_v6", false)] {
        let _ = writeln!(s, "protocol static {name} {{\n  {};", if v4 { "ipv4" } else { "ipv6" });
        for a in routes.iter().filter(|a| a.address.is_ipv4() == v4) {
            let _ = writeln!(s, "  route {} blackhole;", a.prefix());
        }
        s.push_str("}\n");
    }
    for ibgp in [false, true] {
        let _ = writeln!(s, "filter sluice_export_{} {{", if ibgp { "ibgp" } else { "ebgp" });
        s.push_str("  if proto != \"sluice_v4\" && proto != \"sluice_v6\" then reject;\n  bgp_med = 0;\n");
        for p in 1..=crate::config::MAX_PRIORITY {
            for (ty, v4) in [("NET_IP4", true), ("NET_IP6", false)] {
                let set: Vec<String> = routes
                    .iter()
                    .filter(|a| a.priority == p && a.address.is_ipv4() == v4)
                    .map(Announce::prefix)
                    .collect();
                if set.is_empty() {
                    continue;
                }
                let _ = write!(
                    s,
                    "  if net.type = {ty} then {{ if net ~ [ {} ] then {{ bgp_med = {p};",
                    set.join(", ")
                );
                if ibgp {
                    let _ = write!(s, " bgp_local_pref = {};", 100 - 10 * u32::from(p));
                }
                for _ in 0..p {
                    let _ = write!(s, " bgp_path.prepend({});", r.asn);
                }
                s.push_str(" } }\n");
            }
        }
        s.push_str("  accept;\n}\n");
    }
    if r.peers.iter().any(|p| p.bfd) {
        let _ = writeln!(
            s,
            "protocol bfd sluice_bfd {{\n  interface \"*\" {{ interval {} ms; multiplier {}; }};\n}}",
            r.bfd_interval_ms, r.bfd_multiplier
        );
    }
    for (i, p) in r.peers.iter().enumerate() {
        let ibgp = p.asn == r.asn;
        let _ = writeln!(s, "protocol bgp sluice_peer{i} {{");
        let _ = writeln!(s, "  description \"sluice peer {}\";", p.address);
        let _ = writeln!(s, "  local as {};\n  neighbor {} port {} as {};", r.asn, p.address, p.port, p.asn);
        if ibgp {
            s.push_str("  direct;\n");
        }
        let _ = writeln!(
            s,
            "  hold time {}; keepalive time {}; connect retry time 1; error wait time 1, 5;",
            r.hold_time_s,
            (r.hold_time_s / 3).max(1)
        );
        if p.bfd {
            s.push_str("  bfd on;\n");
        }
        let channel = if p.address.is_ipv4() { "ipv4" } else { "ipv6" };
        let _ = writeln!(
            s,
            "  {channel} {{ import none; export filter sluice_export_{};{} }};\n}}",
            if ibgp { "ibgp" } else { "ebgp" },
            if ibgp { " next hop self;" } else { "" }
        );
    }
    s
}

/// Writes `text` to `path` whole (a temporary file renamed over it), so BIRD never reads half
/// a file. The file is 0644 and a folder made for it 0755 whatever the daemon's umask: BIRD
/// runs as a user of its own.
pub fn write_include(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}
