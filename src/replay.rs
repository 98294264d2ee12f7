//! `sluice replay`: the whole appliance (in-process model, driver, flow offload, slow path)
//! over captures instead of wires.
//!
//! Frames of every `--in PORT=FILE` are merged by timestamp (ties in the order the inputs were
//! given), and time is the capture's: before each frame the model's clock is set to its
//! timestamp, the frame enters its port, and the engine runs until nothing moves. Whatever
//! leaves a port at that moment is written to that port's `--out` file with that timestamp.
//! Nothing depends on the wall clock or on thread timing, so the same inputs give the same
//! output bytes; `--stats-json` writes the final counters and flow table, ordered, so it is
//! deterministic too. Every `--out` file is written, empty if nothing left its port.

use crate::config::{self, Config};
use crate::daemon::{report, setup};
use anyhow::{Context, bail};
use flow_offload::FlowTable;
use host_driver::transport::inprocess::{InProcess, SharedInProcess};
use host_driver::{Nic, NicConfig};
use sim_model::clock::{Clock, ManualClock};
use sim_model::device::ModelConfig;
use sim_model::port::{MemoryPort, MemoryPortHandle, PcapSink, PcapSource, RxFrame};
use slowpath::engine::Engine;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `replay` was asked.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The appliance's configuration (its transport and interfaces are not used).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// A capture (pcap or pcapng) of what arrives on port PORT (a name, like p0, or an index).
    #[arg(long = "in", value_name = "PORT=FILE", required = true)]
    pub inputs: Vec<String>,
    /// Where to write what leaves port PORT (classic pcap, microsecond timestamps).
    #[arg(long = "out", value_name = "PORT=FILE")]
    pub outputs: Vec<String>,
    /// Write the final counters and flow table as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Nanosecond timestamps in the output captures.
    #[arg(long)]
    pub nanosecond: bool,
}

/// Why replay refused its arguments (exit 2) or failed while working (exit 1).
#[derive(Debug)]
pub enum ReplayError {
    /// Bad arguments or configuration.
    Usage(String),
    /// Failed while working.
    Failed(anyhow::Error),
}

fn port_of(cfg: &Config, arg: &str, what: &str) -> Result<(u8, PathBuf), ReplayError> {
    let (name, file) = arg
        .split_once('=')
        .ok_or_else(|| ReplayError::Usage(format!("{what} {arg:?}: expected PORT=FILE, like p0=in.pcap")))?;
    let index = cfg
        .port_index(name)
        .or_else(|| name.parse::<usize>().ok().filter(|i| *i < cfg.ports.len()))
        .ok_or_else(|| {
            let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
            ReplayError::Usage(format!(
                "{what} {arg:?}: no port {name:?} in the configuration (ports: {})",
                names.join(", ")
            ))
        })?;
    if file.is_empty() {
        return Err(ReplayError::Usage(format!("{what} {arg:?}: no file after '='")));
    }
    Ok((index as u8, PathBuf::from(file)))
}

/// Whether two paths name one file: the same inode when both exist, else the same absolute
/// path once the existing parent is resolved (`./a.pcap` and `a.pcap` are one file).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return x.dev() == y.dev() && x.ino() == y.ino();
    }
    resolved(a) == resolved(b)
}

fn resolved(p: &Path) -> PathBuf {
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = parent.canonicalize().unwrap_or_else(|_| parent.to_path_buf());
    parent.join(p.file_name().unwrap_or_default())
}

/// Runs a replay. Everything that can be refused is refused before any file is written: the
/// arguments (an output that is an input, or two outputs naming one file), the configuration,
/// and every input capture, which is read whole first. A replay that fails while writing
/// removes the outputs it created, so no empty or half-written capture is left behind.
pub fn run(args: &ReplayArgs) -> Result<String, ReplayError> {
    let cfg = config::load(&args.config).map_err(|e| ReplayError::Usage(e.to_string()))?;
    let mut inputs = Vec::new();
    for a in &args.inputs {
        inputs.push((a, port_of(&cfg, a, "--in")?));
    }
    let mut outputs: Vec<(&String, (u8, PathBuf))> = Vec::new();
    for a in &args.outputs {
        let (port, path) = port_of(&cfg, a, "--out")?;
        if outputs.iter().any(|(_, (p, _))| *p == port) {
            return Err(ReplayError::Usage(format!("--out {a}: port given twice")));
        }
        if let Some((other, _)) = inputs.iter().find(|(_, (_, input))| same_file(input, &path)) {
            return Err(ReplayError::Usage(format!(
                "--out {a}: that file is the input --in {other}; replay would overwrite its own input"
            )));
        }
        if let Some((other, _)) = outputs.iter().find(|(_, (_, out))| same_file(out, &path)) {
            return Err(ReplayError::Usage(format!(
                "--out {a}: --out {other} writes that file too; give each port its own file"
            )));
        }
        outputs.push((a, (port, path)));
    }
    if let Some(stats) = &args.stats_json {
        let clash = inputs.iter().chain(&outputs).find(|(_, (_, p))| same_file(p, stats));
        if let Some((other, _)) = clash {
            return Err(ReplayError::Usage(format!(
                "--stats-json {}: that file is {other}'s capture",
                stats.display()
            )));
        }
    }
    let mut sources = Vec::new();
    for (a, (port, path)) in inputs {
        let src = PcapSource::open(&path).map_err(|e| ReplayError::Usage(format!("--in {a}: {e}")))?;
        sources.push((port, src));
    }
    // A corrupt record is bad input like a corrupt header: exit 2, before any output exists.
    let frames = merge(sources).map_err(|e| ReplayError::Usage(format!("{e:#}")))?;

    let mut sinks: Vec<(u8, PcapSink)> = Vec::new();
    let mut created: Vec<PathBuf> = Vec::new();
    let mut result = Ok(());
    for (_, (port, path)) in outputs {
        match PcapSink::create(&path, args.nanosecond) {
            Ok(sink) => {
                created.push(path);
                sinks.push((port, sink));
            }
            Err(e) => {
                result = Err(anyhow::Error::from(e));
                break;
            }
        }
    }
    let result = result.and_then(|()| replay(&cfg, &frames, &mut sinks, args.stats_json.as_deref()));
    if result.is_err() {
        drop(sinks);
        for path in &created {
            let _ = std::fs::remove_file(path);
        }
    }
    result.map_err(ReplayError::Failed)
}

/// The frames of all inputs, merged by timestamp (stable).
fn merge(inputs: Vec<(u8, PcapSource)>) -> anyhow::Result<Vec<(u64, u8, Vec<u8>)>> {
    let mut all = Vec::new();
    for (order, (port, mut src)) in inputs.into_iter().enumerate() {
        while let Some(RxFrame { data, timestamp_ns }) = src.next_frame()? {
            all.push((timestamp_ns.unwrap_or(0), order, port, data));
        }
    }
    all.sort_by_key(|(ts, order, ..)| (*ts, *order));
    Ok(all.into_iter().map(|(ts, _, port, data)| (ts, port, data)).collect())
}

fn replay(
    cfg: &Config,
    frames: &[(u64, u8, Vec<u8>)],
    sinks: &mut [(u8, PcapSink)],
    stats_json: Option<&Path>,
) -> anyhow::Result<String> {
    let start = frames.first().map_or(0, |f| f.0);
    let clock = Arc::new(ManualClock::new(start));
    let (mut engine, wires) = build(cfg, &clock)?;
    let mut written = 0u64;
    // A bar when a person watches (stderr a terminal); nothing in scripts and tests.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && frames.len() > 10_000 {
        indicatif::ProgressBar::new(frames.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("replay [{bar:40}] {pos}/{len} frames {per_sec}")
    {
        bar.set_style(style);
    }
    for (ts, port, data) in frames {
        bar.inc(1);
        clock.set(*ts);
        if let Some(w) = wires.get(usize::from(*port)) {
            w.push_rx(data.clone(), Some(*ts));
        }
        settle(&mut engine, *ts);
        for (p, w) in wires.iter().enumerate() {
            for f in w.take_tx() {
                if let Some((_, sink)) = sinks.iter_mut().find(|(q, _)| usize::from(*q) == p) {
                    sink.write(&f, *ts)?;
                    written += 1;
                }
            }
        }
    }
    bar.finish_and_clear();
    for (_, s) in sinks.iter_mut() {
        s.flush()?;
    }
    if let Some(path) = stats_json {
        let st = engine.stats();
        let stats = report::stats(
            &engine,
            &st,
            "in-process model (replay)",
            0,
            crate::control::proto::Rates::default(),
        );
        let flows = report::flows(&mut engine, &crate::control::proto::FlowFilter::default());
        let services = report::services(&engine, Vec::new());
        let doc = serde_json::json!({ "stats": stats, "services": services, "flows": flows });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let st = engine.stats();
    Ok(format!(
        "replayed {} frame(s): {written} written, {} connection(s) created, {} offloaded, {} NIC hit(s)\n",
        frames.len(),
        st.workers.iter().map(|w| w.created).sum::<u64>(),
        st.workers.iter().map(|w| w.offloaded).sum::<u64>(),
        st.nic.hits
    ))
}

/// Runs the engine until nothing moves.
pub(crate) fn settle(engine: &mut Engine, now: u64) {
    for _ in 0..64 {
        if engine.poll(now) == 0 {
            engine.poll(now);
            return;
        }
    }
}

/// The appliance over memory wires, one per configured port.
pub(crate) fn build(
    cfg: &Config,
    clock: &Arc<ManualClock>,
) -> anyhow::Result<(Engine, Vec<MemoryPortHandle>)> {
    if cfg.ports.len() > 8 {
        bail!("at most 8 ports");
    }
    let model_cfg = ModelConfig { ports: cfg.ports.len().max(1) as u8, ..ModelConfig::default() };
    let mut model = InProcess::new(model_cfg, clock.clone())?;
    let mut wires = Vec::new();
    for i in 0..cfg.ports.len() {
        let (port, handle) = MemoryPort::new();
        model.attach_port(i as u8, Box::new(port))?;
        wires.push(handle);
    }
    let nic_cfg = NicConfig {
        ring_log2: u32::from(cfg.device.ring_log2),
        exception_rings: u32::try_from(cfg.device.workers)?,
        ..NicConfig::default()
    };
    let mut nic = Nic::bring_up(Box::new(SharedInProcess::new(model)), nic_cfg)?;
    for (i, p) in cfg.ports.iter().enumerate() {
        nic.configure_port(i as u8, u32::from(p.mtu), replay_mac(cfg, i))?;
    }
    let flows = FlowTable::new(nic).map_err(|e| anyhow::anyhow!("flow table: {e}"))?;
    let mut ecfg = setup::engine_config(cfg)?;
    for (i, p) in ecfg.ports.iter_mut().enumerate() {
        p.mac = replay_mac(cfg, i);
    }
    let engine = Engine::new(flows, ecfg, clock.now_ns()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((engine, wires))
}

/// A port's MAC in a replay: the configured one, else `02:00:00:00:00:NN` (the interface of a
/// live port plays no part, so the output does not depend on the machine).
fn replay_mac(cfg: &Config, i: usize) -> [u8; 6] {
    cfg.ports[i].mac.unwrap_or_else(|| config::Mac::for_port_index(i as u8)).0
}
