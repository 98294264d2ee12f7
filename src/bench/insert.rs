//! Flow-record installs and removes per second through the command ring, at a given occupancy
//! of the NIC's table, cuckoo moves included.
//!
//! The table is filled (untimed) to the occupancy, then each run installs 1% of the records
//! more, in batches of [`BATCH`] with one `commit` each (as the engine commits once per poll
//! round): `FlowTable::install` places both tuples in the shadow index (moves planned
//! make-before-break), builds the record and queues the commands; `commit` writes them to the
//! command ring with one doorbell, the model validates and executes them, and the completions
//! are reaped. Then the same flows are removed the same way (timed too), so every run starts
//! at the same occupancy. Occupancy is of the records; the index has two slots per record
//! (`buckets × 4 = 2 × records`), so it is the index's load factor as well.

use super::report::Summary;
use super::rig::{self, Model, P0_MAC, P1_MAC, ROUTER_MAC};
use flow_offload::{Flow, FlowHashes, FlowTable, Handle};
use rtl_spec::formats::{FlowTuple, NextHopCtl, NextHopEntry};

/// Installs (or removes) per commit.
pub const BATCH: usize = 64;

fn v4(a: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a.to_be_bytes());
    out
}

/// Flow `n`, distinct for every `n`: client 100.64.0.0 + n / 64512, port 1024 + n % 64512 →
/// VIP 10.10.1.100:80; server 10.10.2.(1 + n % 64):80 → LIP 10.11.0.0 + n / 64512, the same
/// port. Next hop 1 toward the server (p1), 0 toward the client (p0).
pub fn flow(n: u32) -> Flow {
    let (hi, port) = (n / 64512, (1024 + n % 64512) as u16);
    Flow {
        orig: FlowTuple {
            src_addr: v4(0x6440_0000 + hi),
            dst_addr: v4(u32::from(rig::VIP)),
            src_port: port.into(),
            dst_port: rig::VIP_PORT.into(),
        },
        reply: FlowTuple {
            src_addr: v4(u32::from(rig::rs_addr(n % 64))),
            dst_addr: v4(0x0A0B_0000 + hi),
            src_port: 80.into(),
            dst_port: port.into(),
        },
        proto: 6,
        ipv6: false,
        next_hop_orig: 1,
        next_hop_reply: 0,
        idle_timeout: 90,
        cookie: n,
        host_state: 2,
        counter_set: 0,
        seq_delta: None,
        ts_delta: 0,
    }
}

/// A model of `records` records and its flow table, with next hops 0 (to p0, the router) and
/// 1 (to p1, a server) written.
pub fn table(records: u32) -> anyhow::Result<(Model, FlowTable)> {
    let (model, nic) = rig::model(records, 1, false)?;
    let mut t = FlowTable::new(nic)?;
    let hop = |port: u8, dst: [u8; 6], src: [u8; 6]| NextHopEntry {
        dst_mac: dst,
        src_mac: src,
        vlan_tci: 0.into(),
        ctl: NextHopCtl::new().with_valid(true).with_port(port),
    };
    t.set_next_hop(0, hop(0, ROUTER_MAC, P0_MAC))?;
    t.set_next_hop(1, hop(1, rig::rs_mac(0), P1_MAC))?;
    commit(&mut t)?;
    Ok((model, t))
}

fn commit(t: &mut FlowTable) -> anyhow::Result<()> {
    let refused = t.commit()?;
    anyhow::ensure!(refused.is_empty(), "the NIC refused {} commands: {:?}", refused.len(), refused[0]);
    Ok(())
}

/// Installs flows `from..to` in batches of [`BATCH`], as the engine does a poll round's: each
/// batch's tuples are hashed once, their home buckets prefetched, then installed with the
/// hashes carried, and committed with one doorbell. Returns the handles.
pub fn fill(t: &mut FlowTable, from: u32, to: u32, handles: &mut Vec<Handle>) -> anyhow::Result<()> {
    let seeds = t.seeds();
    let mut batch: Vec<(Flow, FlowHashes)> = Vec::with_capacity(BATCH);
    let mut start = from;
    while start < to {
        let end = start.saturating_add(BATCH as u32).min(to);
        batch.extend((start..end).map(|n| {
            let f = flow(n);
            (f, FlowHashes::of(&f, seeds))
        }));
        for (_, h) in &batch {
            t.prefetch(*h);
        }
        for (f, h) in batch.drain(..) {
            handles.push(t.install_hashed(f, h)?);
        }
        commit(t)?;
        start = end;
    }
    Ok(())
}

/// One occupancy level.
#[derive(Clone, Debug)]
pub struct Level {
    /// Occupancy before each run, percent of the records.
    pub pct: u32,
    /// Installs per second.
    pub inserts: Summary,
    /// Removes per second.
    pub removes: Summary,
    /// Cuckoo moves per install during the timed runs.
    pub moves_per_insert: f64,
    /// Entries in the stash at the end.
    pub stash: u32,
}

/// Installs and removes per second at each of `levels` (percent) of a `records` table: `runs`
/// runs of 1% of the records each.
pub fn insert(records: u32, levels: &[u32], runs: usize) -> anyhow::Result<Vec<Level>> {
    let (_model, mut t) = table(records)?;
    let mut handles = Vec::new();
    let mut next = 0u32;
    let k = (records / 100).max(BATCH as u32);
    let mut out = Vec::new();
    for &pct in levels {
        let target = (u64::from(records) * u64::from(pct) / 100) as u32;
        let have = t.occupancy();
        if target > have {
            fill(&mut t, next, next + target - have, &mut handles)?;
            next += target - have;
        }
        let (mut ins, mut rem) = (Vec::new(), Vec::new());
        let mut moves0 = t.stats().moves;
        let mut installed = 0u64;
        for run in 0..=runs {
            let mut hs = Vec::with_capacity(k as usize);
            let start = rig::Stopwatch::start();
            fill(&mut t, next, next + k, &mut hs)?;
            // Run 0 warms up (first touch of the records' pages, the queues' capacity).
            if run > 0 {
                ins.push(f64::from(k) / start.secs());
                installed += u64::from(k);
            } else {
                moves0 = t.stats().moves;
            }
            next += k;
            let start = rig::Stopwatch::start();
            for (i, h) in hs.iter().enumerate() {
                t.remove(*h, false)?;
                if i % BATCH == BATCH - 1 {
                    commit(&mut t)?;
                }
            }
            commit(&mut t)?;
            if run > 0 {
                rem.push(f64::from(k) / start.secs());
            }
        }
        let moves = t.stats().moves - moves0;
        anyhow::ensure!(t.occupancy() == target, "occupancy drifted: {} != {target}", t.occupancy());
        out.push(Level {
            pct,
            inserts: Summary::of(&ins),
            removes: Summary::of(&rem),
            moves_per_insert: moves as f64 / installed as f64,
            stash: t.stash_used(),
        });
    }
    Ok(out)
}
