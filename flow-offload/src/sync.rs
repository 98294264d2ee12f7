//! Keeping the host and the NIC in step beyond single commands: live counters and idle times
//! pulled in bulk, the NIC's flow events handed back as [`FlowEvent`]s, and the three ways the
//! replica is rebuilt: after a device reset the shadow is rewritten into the NIC
//! ([`FlowTable::reconcile`], called by the recovery in [`crate::health`]); after a daemon restart the NIC's
//! table is read back (each record with its `ts_delta`, which the Read's completion carries) and
//! what is consistent is adopted ([`FlowTable::adopt`]).

use crate::table::{Flow, FlowCounters, FlowEvent, FlowTable, Handle, InstallError, Undo};
use host_driver::{DriverError, Nic};
use rtl_spec::codes::{ErrorCode, EventKind, FlowCause, Opcode, Status};
use rtl_spec::formats::{CommandFlags, FlowCommand, FlowRecord};
use rtl_spec::regs::flow_table;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, IntoBytes};

/// Records read back per batch of Read commands when adopting.
const ADOPT_BATCH: usize = 256;

impl FlowTable {
    /// Live counters of flows, read with one batch of Query commands (with `clear`, the NIC
    /// zeroes them after reading, for callers that accumulate). Flows the NIC no longer holds
    /// are left out. Commands queued or in flight are completed first, so the counters are
    /// those of the table as decided.
    pub fn counters(
        &mut self,
        handles: &[Handle],
        clear: bool,
    ) -> Result<Vec<(Handle, FlowCounters)>, DriverError> {
        if let Some(f) = &self.fault {
            return Err(DriverError::BringUp(format!("the NIC is lost ({})", f.last_error)));
        }
        self.commit()?;
        let cmds: Vec<FlowCommand> = handles
            .iter()
            .map(|h| FlowCommand {
                opcode: Opcode::Query.into(),
                flags: CommandFlags::new().with_clear(clear),
                record: U32::new(h.0),
                ..FlowCommand::default()
            })
            .collect();
        let completions = self.nic.execute(&cmds)?;
        Ok(handles
            .iter()
            .zip(completions)
            .filter(|(_, c)| c.status == Status::Ok as u8)
            .map(|(h, c)| {
                let counters = FlowCounters {
                    packets: [c.packets_orig.get(), c.packets_reply.get()],
                    bytes: [c.bytes_orig.get(), c.bytes_reply.get()],
                    tcp_flags: [c.tcp_flags_orig, c.tcp_flags_reply],
                    idle_ms: c.idle_ms.get(),
                };
                (*h, counters)
            })
            .collect())
    }

    /// Takes the NIC's events and hands them back as flow events. A record the NIC evicted
    /// itself is dropped from the shadow here, so shadow and replica stay equal.
    pub fn poll_events(&mut self, out: &mut Vec<FlowEvent>, max: usize) -> usize {
        let mut raw = Vec::new();
        let n = self.nic.recv_events(&mut raw, max);
        for e in raw {
            match EventKind::try_from(e.kind) {
                Ok(EventKind::FlowInfo) => {
                    let h = Handle(e.record.get());
                    let Ok(cause) = FlowCause::try_from(e.cause) else { continue };
                    if cause == FlowCause::Evicted && self.records.is_live(h.0) {
                        let _ = self.take(h, None);
                        self.stats.removes += 1;
                    }
                    out.push(FlowEvent::Flow {
                        handle: h,
                        cookie: e.cookie.get(),
                        cause,
                        counters: FlowCounters {
                            packets: [e.packets_orig.get(), e.packets_reply.get()],
                            bytes: [e.bytes_orig.get(), e.bytes_reply.get()],
                            tcp_flags: [e.tcp_flags_orig, e.tcp_flags_reply],
                            idle_ms: e.idle_ms.get(),
                        },
                    });
                }
                Ok(EventKind::Error) => {
                    out.push(FlowEvent::DeviceError(ErrorCode::try_from(e.cause).ok(), e.data.get()));
                }
                _ => {}
            }
        }
        n
    }

    /// Rewrites the NIC's table from the shadow: after a device reset the NIC is empty and the
    /// shadow still holds every flow. Uses the driver directly (a device that hangs again is an
    /// error, not a second recovery).
    pub fn reconcile(&mut self) -> Result<(), DriverError> {
        self.queue.clear();
        self.in_flight.clear();
        // Every pending Insert was dropped: the rewrite below is the records' Insert now.
        self.orphans.clear();
        self.records.settle_all();
        let mut cmds = Vec::new();
        for (n, e) in self.next_hops.iter().enumerate() {
            let Some(e) = e else { continue };
            let mut cmd = FlowCommand {
                opcode: Opcode::NextHopSet.into(),
                arg: U32::new(n as u32),
                ..FlowCommand::default()
            };
            cmd.payload[..16].copy_from_slice(e.as_bytes());
            cmd.payload[16..48].copy_from_slice(self.tunnels[n].as_bytes());
            cmds.push(cmd);
        }
        // The reset emptied the bank: every set again (zeroed) before the records naming them.
        self.forget_bank_buffer();
        cmds.extend(self.bank.realloc_commands());
        for (record, flow) in self.records.iter() {
            let [orig_pos, reply_pos] = self.positions_of(record, &flow);
            let mut cmd = FlowCommand {
                opcode: Opcode::Insert.into(),
                record: U32::new(record),
                cookie: 0.into(),
                slot_orig: orig_pos.unwrap_or_default(),
                slot_reply: reply_pos.unwrap_or_default(),
                ..FlowCommand::default()
            };
            Self::write_payload(&flow, &mut cmd);
            cmds.push(cmd);
        }
        let completions = self.nic.execute(&cmds)?;
        let failed = completions.iter().filter(|c| c.status != Status::Ok as u8).count();
        if failed > 0 {
            return Err(DriverError::BringUp(format!(
                "{failed} of {} commands refused while rewriting the table after a reset",
                cmds.len()
            )));
        }
        Ok(())
    }

    /// Takes over a NIC whose table may hold flows from an earlier run of the daemon (a
    /// restart without a device reset): every live record is read back, checked as an install
    /// would check it, and the consistent ones are adopted. Because the NIC's index positions
    /// are not readable, the table is then flushed and the adopted flows reinstalled through
    /// the shadow's own placement, in one batch: a packet of an adopted flow that arrives
    /// between the flush and its reinsert misses and is punted to the slow path, which has the
    /// adopted connection by then, so no connection is lost. Returns the table and the adopted
    /// flows with their new handles; `skipped` counts records that were not consistent.
    pub fn adopt(nic: Nic) -> Result<(FlowTable, Adopted), AdoptError> {
        let mut table = FlowTable::new(nic).map_err(|e| AdoptError::Geometry(e.to_string()))?;
        let base = table.nic.block(rtl_spec::codes::BlockType::FlowTable).map_err(AdoptError::Device)?;
        let live = table.nic.transport().read32(base + flow_table::OCCUPANCY);
        let mut found = Vec::new();
        let mut skipped = 0u32;
        if live > 0 {
            let records = table.records.capacity();
            let region = table.nic.transport().alloc_dma(128 * ADOPT_BATCH).map_err(AdoptError::Device)?;
            let mut start = 0u32;
            while start < records && (found.len() as u32 + skipped) < live {
                let n = (records - start).min(ADOPT_BATCH as u32);
                let cmds: Vec<FlowCommand> = (0..n)
                    .map(|i| FlowCommand {
                        opcode: Opcode::Read.into(),
                        record: U32::new(start + i),
                        dma_addr: (region.iova() + 128 * u64::from(i)).into(),
                        ..FlowCommand::default()
                    })
                    .collect();
                let completions = table.nic.execute(&cmds).map_err(AdoptError::Device)?;
                for (i, cpl) in completions.iter().enumerate().take(n as usize) {
                    let mut b = [0u8; 128];
                    region.read(128 * i, &mut b);
                    let Ok(rec) = FlowRecord::read_from_bytes(&b) else { continue };
                    if !rec.ctl.valid() || cpl.status != Status::Ok as u8 {
                        continue;
                    }
                    // The extension word is not in the record's copy: the completion carries it.
                    let flow = flow_of(&rec, cpl.ts_delta.get());
                    match table.validate(&flow) {
                        Ok(()) => found.push(flow),
                        Err(e) => {
                            skipped += 1;
                            tracing::warn!(record = start + i as u32, error = %e, "not adopting an inconsistent record");
                        }
                    }
                }
                start += n;
            }
            let _ = table.nic.transport().free_dma(&region);
        }
        table.free_stale_sets().map_err(AdoptError::Device)?;
        table.queue.push_back((
            FlowCommand { opcode: Opcode::Flush.into(), ..FlowCommand::default() },
            Undo::Nothing,
        ));
        let mut flows = Vec::with_capacity(found.len());
        for flow in found {
            match table.install(flow) {
                Ok(h) => flows.push((h, flow)),
                Err(InstallError::Device(e)) => return Err(AdoptError::Device(e)),
                Err(e) => {
                    skipped += 1;
                    tracing::warn!(error = %e, "not adopting a record");
                }
            }
        }
        table.commit().map_err(AdoptError::Device)?;
        // A refused reinsert was rolled back by commit; keep only what the NIC holds.
        flows.retain(|(h, f)| table.get(*h) == Some(*f));
        table.stats.adopted = flows.len() as u64;
        table.stats.installs = 0;
        Ok((table, Adopted { flows, skipped }))
    }
}

/// What [`FlowTable::adopt`] took over.
#[derive(Debug, Default)]
pub struct Adopted {
    /// The flows, with their handles in the new table.
    pub flows: Vec<(Handle, Flow)>,
    /// Live records that were not consistent (or did not fit) and were dropped.
    pub skipped: u32,
}

/// Why adoption failed.
#[derive(Debug)]
pub enum AdoptError {
    /// The NIC's geometry is not one the shadow can hold.
    Geometry(String),
    /// The device failed.
    Device(DriverError),
}

impl std::fmt::Display for AdoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdoptError::Geometry(m) => write!(f, "flow table geometry: {m}"),
            AdoptError::Device(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AdoptError {}

/// The flow a record and its extension word's `ts_delta` describe.
fn flow_of(rec: &FlowRecord, ts_delta: u32) -> Flow {
    Flow {
        orig: rec.orig,
        reply: rec.reply,
        proto: rec.ctl.proto(),
        ipv6: rec.ctl.ipv6(),
        next_hop_orig: rec.dir_orig.next_hop.get(),
        next_hop_reply: rec.dir_reply.next_hop.get(),
        idle_timeout: rec.idle_timeout.get(),
        cookie: rec.cookie.get(),
        host_state: rec.ctl.host_state(),
        // The host's map from sets to servers did not survive the restart: the old run's sets
        // are freed at adoption and the flow names none until its new owner points it at one
        // (the slow path's engine gives it its server's set, `set_flow_counter_set`).
        counter_set: 0,
        seq_delta: rec.ctl.seq_adjust().then(|| rec.seq_delta.get()),
        ts_delta,
    }
}
