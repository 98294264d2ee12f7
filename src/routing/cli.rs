//! `sluice cluster`: the announcer's state as a person reads it (`--json` prints the
//! daemon's [`ClusterReply`] unchanged).

use super::ClusterReply;
use std::fmt::Write as _;

/// The table `sluice cluster` prints.
pub fn format(r: &ClusterReply) -> String {
    let mut s = String::new();
    if r.bird_socket.is_empty() {
        s.push_str("No [routing]: this node announces nothing.\n");
        if let Some(sync) = &r.sync {
            s.push_str(&crate::sync::format(sync));
        }
        return s;
    }
    let bird = if r.bird_up {
        "up".to_string()
    } else {
        format!("UNREACHABLE ({} failure(s)): {}", r.bird_failures, r.last_error.as_deref().unwrap_or("?"))
    };
    let _ = writeln!(s, "BIRD {} at {}, AS {}, {} update(s)", bird, r.bird_socket, r.asn, r.updates);
    let _ = writeln!(s, "\nSession              State   Info");
    for p in &r.protocols {
        let _ = writeln!(s, "{:<20} {:<7} {}", p.name, p.state, p.info);
    }
    let _ = writeln!(s, "\nPrefix                                       Kind Prio Announced");
    let mut all: Vec<_> = r.wanted.iter().chain(&r.announced).cloned().collect();
    all.sort();
    all.dedup();
    for a in &all {
        let state = match (r.announced.contains(a), r.wanted.contains(a)) {
            (true, true) => "yes",
            (false, true) => "pending",
            _ => "withdrawing",
        };
        let _ = writeln!(s, "{:<44} {:<4} {:<4} {state}", a.prefix(), a.kind, a.priority);
    }
    if all.is_empty() {
        s.push_str("(nothing: no service has a server up, or the NIC is down)\n");
    }
    if let Some(sync) = &r.sync {
        s.push_str(&crate::sync::format(sync));
    }
    s
}
