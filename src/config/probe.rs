//! `[[probe]]`: proactive end-to-end checks of a VIP from the node itself (a TCP connect or an
//! HTTP GET to the VIP's address and port, routed by the host like any client's: through the
//! router in a cluster, so the probe sees what clients see). Results are exported as metrics
//! and shown by `sluice services`; a probe changes nothing in the datapath.
//!
//! | key | values | default | |
//! |---|---|---|---|
//! | `probe[].target` | `"10.99.0.100:80"` | *required* | What to check. |
//! | `probe[].name` | text, unique | the target | The label in metrics and `sluice services`. |
//! | `probe[].check` | inline table, the keys of `service[].health` | `{ kind = "tcp" }` | How, how often, rise and fall. |

use super::error::Problem;
use super::raw::{RawHealth, RawProbe};
use super::validate::{endpoint, missing};
use super::{Health, HealthKind};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// The most `[[probe]]` tables (each is a thread that sleeps between checks).
pub const MAX_PROBES: usize = 64;

/// One `[[probe]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `name` (default: the target as written).
    pub name: String,
    /// `target`: the address and port checked.
    pub target: SocketAddr,
    /// `check`: the kind, interval, timeout, rise and fall, as a service's `health`.
    pub check: Health,
}

/// Checks the `[[probe]]` tables.
pub(super) fn probes(raw: &[RawProbe]) -> Result<Vec<Probe>, Problem> {
    if raw.len() > MAX_PROBES {
        return Err(Problem::raw("probe", format!("{} [[probe]] tables: at most {MAX_PROBES}", raw.len())));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = format!("probe[{i}]");
        let Some(t) = &r.target else {
            return Err(missing(
                &at,
                "target",
                "the VIP and port to check, like target = \"10.99.0.100:80\"",
            ));
        };
        let target = endpoint(&format!("{at}.target"), t, "\"10.99.0.100:80\"")?;
        let name = r.name.clone().unwrap_or_else(|| t.clone());
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            let path = format!("{at}.name");
            return Err(Problem::raw(
                &path,
                format!("{path} = {name:?}: a label without quotes, backslashes or control characters"),
            ));
        }
        if let Some(j) = seen.insert(name.clone(), i) {
            let path = format!("{at}.name");
            return Err(Problem::raw(
                &path,
                format!("{path} = {name:?}: duplicate probe name (also probe[{j}])"),
            ));
        }
        let tcp = RawHealth { kind: Some("tcp".into()), ..RawHealth::default() };
        let check = super::service::health(&format!("{at}.check"), r.check.as_ref().unwrap_or(&tcp))?;
        out.push(Probe { name, target, check });
    }
    Ok(out)
}

/// What a probe checks, in one word for listings.
pub fn kind_name(h: &Health) -> &'static str {
    match h.kind {
        HealthKind::Tcp => "tcp",
        HealthKind::Http { .. } => "http",
    }
}
