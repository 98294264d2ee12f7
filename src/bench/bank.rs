//! The NIC's counter bank read, timed with few and with many flows installed: the read is one
//! `CounterBankRead` command and one DMA write of the sets (one per real server), so its time
//! depends on the number of sets, not of flows. The flows are spread over 64 servers, each with
//! its set, as the slow path does; the bank is read up to the highest allocated set, as the
//! daemon reads it once per reporting interval.

use super::insert::{self, BATCH};
use super::report::{Figure, Summary, flows_label};
use super::rig;
use flow_offload::FlowTable;

/// Servers (and counter sets) the flows are spread over.
pub const SERVERS: u32 = 64;

/// Microseconds per bank read with `flows` flows installed (in a table of twice as many
/// records), `reads` timed reads after a warm-up.
pub fn bank_read(flows: u32, reads: usize) -> anyhow::Result<Summary> {
    let records = (flows * 2).next_power_of_two().max(1 << 10);
    let (_model, mut t) = insert::table(records)?;
    let sets: Vec<u16> = (0..SERVERS).map(|_| t.alloc_counter_set()).collect::<Result<_, _>>()?;
    for n in 0..flows {
        let mut f = insert::flow(n);
        f.counter_set = sets[(n % SERVERS) as usize];
        t.install(f)?;
        if n as usize % BATCH == BATCH - 1 {
            commit(&mut t)?;
        }
    }
    commit(&mut t)?;
    anyhow::ensure!(t.occupancy() == flows, "{} of {flows} flows installed", t.occupancy());
    t.read_counter_bank()?;
    let mut us = Vec::with_capacity(reads);
    for _ in 0..reads {
        let start = rig::Stopwatch::start();
        let bank = t.read_counter_bank()?;
        std::hint::black_box(bank);
        us.push(start.secs() * 1e6);
    }
    Ok(Summary::of(&us))
}

fn commit(t: &mut FlowTable) -> anyhow::Result<()> {
    let refused = t.commit()?;
    anyhow::ensure!(refused.is_empty(), "the NIC refused {} commands", refused.len());
    Ok(())
}

/// The bank read at each of `counts` flows, as report figures.
pub fn figures(counts: &[u32], reads: usize, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Figure>> {
    let mut out = Vec::new();
    for &flows in counts {
        progress(&format!("counter bank read with {} flows", flows_label(u64::from(flows))));
        let s = bank_read(flows, reads)?;
        let name = format!("bank read at {} flows", flows_label(u64::from(flows)));
        let note = format!("{SERVERS} servers' sets, one command and one DMA write per read");
        out.push(Figure::new("bank", &name, s, "µs/read", note));
    }
    Ok(out)
}
