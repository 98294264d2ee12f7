//! Scaling from 1k to 10M flows, and the figures of the connection ramp: the scaling table
//! joins the cps windows the ramp measured at each checkpoint with the datapath's Mpps at the
//! same number of installed records; the memory figures come from the same ramp.

use super::cps::{RampOutcome, RampPlan};
use super::fastpath;
use super::memory::{self, TableBytes};
use super::report::{Figure, ScalePoint, Summary};

/// The scaling table at `flows`: the ramp's checkpoints (the nearest at or above each count)
/// and the datapath points.
pub fn points(ramp: Option<&RampOutcome>, fast: &[fastpath::Point], flows: &[u64]) -> Vec<ScalePoint> {
    flows
        .iter()
        .map(|&n| {
            let at = ramp.and_then(|r| r.points.iter().find(|p| p.flows >= n));
            ScalePoint {
                flows: n,
                cps: at.map(|p| p.cps.clone()),
                mpps: fast.iter().find(|p| p.flows == n).map(|p| p.mpps.clone()),
                heap: at.map(|p| p.heap),
                rss: at.map(|p| p.rss),
            }
        })
        .collect()
}

/// The memory figures and the limit run.
pub fn memory_figures(t: &TableBytes, r: &RampOutcome, plan: &RampPlan) -> Vec<Figure> {
    let ports = super::cps::ramp_topology().port_capacity();
    let span = format!("heap after {} connections less the heap before the first, per connection", r.held);
    let mut out = memory::figures(t, r.heap_per_conn, &span);
    let projected = out.pop();
    if let Some(f) = out.pop() {
        out.push(f.against("Alibaba LVS (24 GB / 40M)", 24e9 / 40e6));
    }
    out.extend(projected.map(|f| f.against("Alibaba LVS host", 40e6)));
    let rate = if r.secs > 0.0 { r.held as f64 / r.secs } else { 0.0 };
    let full = r.nic_full_at.map_or_else(
        || "the NIC's table never refused an install".to_string(),
        |(n, t)| {
            let after = if r.secs > t { (r.held - n) as f64 / (r.secs - t) } else { 0.0 };
            format!(
                "the NIC's table first refused an install at {n} connections ({t:.0} s); after that {} conn/s (host path)",
                super::report::human(after)
            )
        },
    );
    out.push(
        Figure::new(
            "memory",
            "most concurrent connections",
            Summary::of(&[r.held as f64]),
            "conns",
            format!(
                "stopped by: {}; {:.0} s to set up ({} conn/s on average, wall clock), {} of them in the NIC ({} records); {full}; the port pools allow {ports}; RSS {} MiB at the end (cap {} GiB), heap {} MiB",
                r.limit,
                r.secs,
                super::report::human(rate),
                r.offloaded,
                plan.records,
                r.end.1 >> 20,
                plan.rss_cap >> 30,
                r.end.0 >> 20,
            ),
        )
        .against("Alibaba LVS host", 40e6)
        .against("DPVS 8 workers", 8e6),
    );
    out
}
