//! `sluice bench`: the appliance's four numbers and how they scale, measured in-process against
//! the software NIC with no packet I/O cost.
//!
//! - `cps` ([`cps`]): the whole first-packet path, SYN to installed flow, with 1 and 2 workers;
//! - `insert` ([`insert`]): flow installs and removes through the command ring at 10/50/90%;
//! - `fastpath` ([`fastpath`]): hits through the model's datapath at 1k, 1M and 10M flows;
//! - `memory` ([`memory`]): bytes per connection and per record, and the most concurrent
//!   connections before a limit;
//! - `scaling` ([`scaling`]): cps and fastpath from 1k to 10M flows, a table and an SVG;
//! - `bank` ([`bank`]): the NIC's counter bank read (per-server figures) with 1k and with 1M
//!   flows installed, which should take about the same time.
//!
//! Every figure is the median of several runs with their range; the table compares each with
//! the published anchors as a ratio. Nothing here asserts a speed: figures are printed, not
//! tested (the test below only checks that a tiny run produces every row).

// Counts (connections, packets, bytes: all far below 2^52) become f64 to make rates.
#![allow(clippy::cast_precision_loss)]

pub mod bank;
pub mod cps;
pub mod fastpath;
pub mod insert;
pub mod memlimit;
pub mod memory;
pub mod report;
pub mod rig;
pub mod scaling;

use anyhow::Context;
use clap::{Args, ValueEnum};
use report::{Figure, Machine, Report};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A benchmark family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Family {
    /// New connections per second (1 and 2 workers).
    Cps,
    /// Flow installs and removes per second at 10/50/90% occupancy.
    Insert,
    /// Datapath packets per second on hits at 1k/1M/10M flows.
    Fastpath,
    /// Bytes per connection and record; most concurrent connections.
    Memory,
    /// cps and fastpath from 1k to 10M flows (table and SVG).
    Scaling,
    /// The counter bank read with 1k and 1M flows installed.
    Bank,
}

/// `sluice bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// A short run (under two minutes): smaller tables, fewer and shorter runs.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Run only these families (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Family>,
    /// Where the scaling plot (and, for a full run, results.json) are written.
    #[arg(long, value_name = "DIR", default_value = "bench")]
    pub out: PathBuf,
    /// memory: the most connections the limit run sets up (default: 100M for a full run, 300k
    /// for a quick one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,
    /// memory: the resident size, in GiB, at which the limit run stops (default: 16 for a full
    /// run, 4 for a quick one).
    #[arg(long, value_name = "GIB", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub rss_cap: Option<u64>,
}

/// The sizes of a run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// "quick", "full" or "tiny".
    pub mode: &'static str,
    /// cps: records, warm-up, window, runs.
    pub cps: cps::CpsPlan,
    /// insert: records, runs per level.
    pub insert: (u32, usize),
    /// fastpath: records, flow counts, runs, packets per run.
    pub fastpath: (u32, Vec<u64>, usize, u64),
    /// Flow counts of the scaling table.
    pub scale: Vec<u64>,
    /// The connection ramp (scaling and memory).
    pub ramp: cps::RampPlan,
    /// bank: flow counts, timed reads at each.
    pub bank: (Vec<u32>, usize),
}

const GIB: u64 = 1 << 30;

impl Plan {
    /// The full run (10–20 minutes here).
    pub fn full() -> Self {
        Plan {
            mode: "full",
            cps: cps::CpsPlan { window: 50_000, runs: 9, warmup: 10_000, records: 1 << 20 },
            insert: (1 << 20, 7),
            fastpath: (1 << 24, vec![1_000, 1_000_000, 10_000_000], 7, 2_000_000),
            scale: vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000],
            ramp: cps::RampPlan {
                records: 1 << 24,
                checkpoints: vec![],
                runs: 5,
                to_limit: true,
                rss_cap: 16 * GIB,
                time_budget: Duration::from_secs(900),
                max_conns: 100_000_000,
            },
            bank: (vec![1_000, 1_000_000], 201),
        }
    }

    /// The quick run (under two minutes).
    pub fn quick() -> Self {
        Plan {
            mode: "quick",
            cps: cps::CpsPlan { window: 10_000, runs: 5, warmup: 2_000, records: 1 << 18 },
            insert: (1 << 16, 5),
            fastpath: (1 << 21, vec![1_000, 1_000_000], 5, 500_000),
            scale: vec![1_000, 10_000, 100_000],
            ramp: cps::RampPlan {
                records: 1 << 19,
                checkpoints: vec![],
                runs: 3,
                to_limit: true,
                rss_cap: 4 * GIB,
                time_budget: Duration::from_secs(8),
                max_conns: 300_000,
            },
            bank: (vec![1_000, 1_000_000], 51),
        }
    }

    /// A run small enough for a unit test (seconds in a debug build).
    #[cfg(test)]
    pub fn tiny() -> Self {
        Plan {
            mode: "tiny",
            cps: cps::CpsPlan { window: 100, runs: 2, warmup: 50, records: 1 << 10 },
            insert: (1 << 10, 2),
            fastpath: (1 << 12, vec![100, 1_000], 2, 1_000),
            scale: vec![100, 1_000],
            ramp: cps::RampPlan {
                records: 1 << 12,
                checkpoints: vec![],
                runs: 2,
                to_limit: true,
                rss_cap: 8 * GIB,
                time_budget: Duration::from_secs(30),
                max_conns: 3_000,
            },
            bank: (vec![100, 1_000], 5),
        }
    }
}

/// Runs the benchmark as the arguments say: prints the table (or JSON) and writes the plot.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let mut plan = if args.quick { Plan::quick() } else { Plan::full() };
    if let Some(n) = args.max_conns {
        plan.ramp.max_conns = n;
    }
    if let Some(g) = args.rss_cap {
        plan.ramp.rss_cap = g * GIB;
    }
    // A spinner with the step for a person at a terminal; one line per step otherwise (logs).
    let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let report = measure(&plan, &args.only, &mut |m| match &spinner {
        Some(s) => s.set_message(format!("sluice bench: {m}")),
        None => eprintln!("sluice bench: {m}"),
    })?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let suffix = if args.quick { "-quick" } else { "" };
    if let Some(svg) = report.svg() {
        let p = args.out.join(format!("scaling{suffix}.svg"));
        std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("sluice bench: plot written to {}", p.display());
    }
    // Only a full run of every family replaces the recorded figures: a partial one (`--only`)
    // would overwrite them with a subset.
    if !args.quick && args.only.is_empty() {
        let p = args.out.join("results.json");
        std::fs::write(&p, report.json()).with_context(|| format!("writing {}", p.display()))?;
    }
    let text = if args.json { report.json() } else { report.table() };
    crate::write_stdout(&text)
}

/// This machine's memory limit for the lookup's access pattern, against the 1M-flow figure.
fn memory_limit(pts: &[fastpath::Point], runs: usize, packets: u64) -> anyhow::Result<Figure> {
    let limit = memlimit::random_line_reads(runs, packets * 2)?;
    let best_1m = pts.iter().filter(|p| p.flows >= 1_000_000).map(|p| p.mpps.median).next();
    let note = format!(
        "random independent 64-byte reads from a 256 MiB table on huge pages, batches of 32 prefetched; two dependent \
         lines per packet cap a lookup at {:.1} Mpps here{}",
        limit.median / 2.0,
        best_1m.map_or(String::new(), |m| format!(
            "; the fast path at 1M flows is {:.0}% of that",
            100.0 * m / (limit.median / 2.0)
        ))
    );
    Ok(Figure::new("fastpath", "memory limit (line reads)", limit, "M/s", note))
}

/// Runs the families of `only` (all when empty) at the sizes of `plan`. Each family makes its
/// own figures; fastpath and the connection ramp also feed the scaling table, so they run when
/// either they or `scaling` are asked for.
pub fn measure(plan: &Plan, only: &[Family], progress: &mut dyn FnMut(&str)) -> anyhow::Result<Report> {
    let t0 = Instant::now();
    let on = |f: Family| only.is_empty() || only.contains(&f);
    let mut r =
        Report { date: date(), machine: Machine::this(), mode: plan.mode.into(), ..Report::default() };
    if on(Family::Cps) {
        r.figures.extend(cps_figures(plan.cps, progress)?);
    }
    if on(Family::Bank) {
        r.figures.extend(bank::figures(&plan.bank.0, plan.bank.1, progress)?);
    }
    if on(Family::Insert) {
        r.figures.extend(insert_figures(plan.insert, progress)?);
    }
    let fast_points = if on(Family::Fastpath) || on(Family::Scaling) {
        let (pts, figures) = fastpath_run(plan, on(Family::Fastpath), on(Family::Scaling), progress)?;
        r.figures.extend(figures);
        pts
    } else {
        Vec::new()
    };
    let ramp = if on(Family::Memory) || on(Family::Scaling) {
        let (out, figures) = connection_ramp(plan, on(Family::Memory), on(Family::Scaling), progress)?;
        r.figures.extend(figures);
        Some(out)
    } else {
        None
    };
    if on(Family::Scaling) {
        r.scaling = scaling::points(ramp.as_ref(), &fast_points, &plan.scale);
    }
    r.seconds = t0.elapsed().as_secs_f64();
    r.cpu_share = rig::cpu_share();
    Ok(r)
}

/// cps: the first-packet path with one worker and with two (threads, per core).
fn cps_figures(plan: cps::CpsPlan, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for workers in [1u16, 2] {
        progress(&format!("cps with {workers} worker(s)"));
        let (s, note) = cps::cps(workers, plan)?;
        let name = if workers == 1 {
            "1 worker".to_string()
        } else {
            format!("{workers} workers (threads), per core")
        };
        figures.push(
            Figure::new("cps", &name, s, "conn/s", note)
                .against("DPVS per worker", 200_000.0)
                .against("Alibaba LVS", 300_000.0)
                .against("Tiara", 1_800_000.0),
        );
    }
    Ok(figures)
}

/// insert: installs and removes at 10, 50 and 90% occupancy.
fn insert_figures(
    (records, runs): (u32, usize),
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Figure>> {
    progress("insert");
    let mut figures = Vec::new();
    for l in insert::insert(records, &[10, 50, 90], runs)? {
        let note = format!(
            "{records} records; {:.3} cuckoo moves per install; {} in the stash",
            l.moves_per_insert, l.stash
        );
        let name = format!("installs at {}%", l.pct);
        figures.push(
            Figure::new("insert", &name, l.inserts, "installs/s", note)
                .against("Tiara cps", 1_800_000.0)
                .against("Napatech learn/core", 1_000_000.0),
        );
        let name = format!("removes at {}%", l.pct);
        figures.push(Figure::new("insert", &name, l.removes, "removes/s", String::new()));
    }
    Ok(figures)
}

/// The datapath ramp, over the flow counts of `fastpath` (its figures and the memory limit,
/// when `figures`) and of the scaling table (when `scaling`). Returns every point measured and
/// the figures.
fn fastpath_run(
    plan: &Plan,
    figures: bool,
    scaling: bool,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<(Vec<fastpath::Point>, Vec<Figure>)> {
    let (records, ref counts, runs, packets) = plan.fastpath;
    let mut want: Vec<u64> = if figures { counts.clone() } else { Vec::new() };
    if scaling {
        want.extend(&plan.scale);
    }
    want.sort_unstable();
    want.dedup();
    let pts = fastpath::ramp(records, &want, runs, packets, &mut *progress)?;
    let mut out = Vec::new();
    if figures {
        for p in pts.iter().filter(|p| counts.contains(&p.flows)) {
            let note = format!(
                "{records} records; {:.1} ns/packet median; harness (draw + patch) {:.1} ns/packet included",
                1e3 / p.mpps.median,
                p.harness_ns
            );
            let name = format!("hits at {} flows", report::flows_label(p.flows));
            out.push(
                Figure::new("fastpath", &name, p.mpps.clone(), "Mpps", note)
                    .against("ixy.rs/core", 26.0)
                    .against("100GbE line rate", 148.8),
            );
        }
        out.push(memory_limit(&pts, runs, packets)?);
        out.push(Figure::new(
            "fastpath",
            "memory latency (dependent loads)",
            memlimit::dependent_load_ns(runs, (packets / 8).max(1 << 16))?,
            "ns",
            "a pointer chase through the same table in one random cycle: how long before its use a \
             prefetch must be issued (the lookup pipeline keeps each stage six frames ahead)"
                .to_string(),
        ));
    }
    Ok((pts, out))
}

/// The connection ramp: through the scaling table's flow counts (when `scaling`, otherwise the
/// two largest) and, for `memory`, on to the most concurrent connections, with the table's
/// geometry and the memory figures. Returns the ramp and the figures.
fn connection_ramp(
    plan: &Plan,
    memory: bool,
    scaling: bool,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<(cps::RampOutcome, Vec<Figure>)> {
    let mut rp = plan.ramp.clone();
    rp.checkpoints =
        if scaling { plan.scale.clone() } else { plan.scale.iter().rev().take(2).rev().copied().collect() };
    rp.to_limit = memory;
    if !memory {
        progress(&format!("connection ramp to {:?}", rp.checkpoints));
        return Ok((cps::ramp(&rp, &mut *progress)?, Vec::new()));
    }
    progress("memory: table geometry");
    let t = memory::table_bytes(rp.records)?;
    progress(&format!("connection ramp to {:?}", rp.checkpoints));
    let out = cps::ramp(&rp, &mut *progress)?;
    let figures = scaling::memory_figures(&t, &out, &rp);
    Ok((out, figures))
}

/// Now, UTC, as `date` prints it (ISO 8601).
fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn the_quick_flags_parse() {
        let c =
            Cli::try_parse_from(["bench", "--quick", "--json", "--only", "cps,fastpath", "--out", "/tmp/x"])
                .unwrap();
        assert!(c.bench.quick && c.bench.json);
        assert_eq!(c.bench.only, vec![Family::Cps, Family::Fastpath]);
        let c = Cli::try_parse_from(["bench", "--quick"]).unwrap();
        assert_eq!(c.bench.out, PathBuf::from("bench"));
        assert!(c.bench.only.is_empty());
        assert!(Cli::try_parse_from(["bench", "--only", "nonsense"]).is_err());
        let q = Plan::quick();
        assert!(q.fastpath.1.iter().all(|n| *n <= 1_000_000), "quick mode stays at 1M flows");
    }

    #[test]
    fn a_tiny_run_produces_every_row() {
        let r = measure(&Plan::tiny(), &[], &mut |_| {}).unwrap();
        let table = r.table();
        for row in [
            "1 worker",
            "2 workers (threads), per core",
            "installs at 10%",
            "installs at 50%",
            "installs at 90%",
            "removes at 90%",
            "hits at 100 flows",
            "hits at 1k flows",
            "NIC table per record",
            "host shadow per record",
            "host connection table per connection",
            "most concurrent connections",
            "bank read at 100 flows",
            "bank read at 1k flows",
        ] {
            assert!(table.contains(row), "row {row:?} missing from\n{table}");
        }
        assert_eq!(r.scaling.len(), 2);
        assert!(r.scaling.iter().all(|p| p.cps.is_some() && p.mpps.is_some()));
        assert!(r.svg().unwrap().contains("<polyline"));
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert!(json["figures"].as_array().unwrap().len() >= 12);
    }
}
