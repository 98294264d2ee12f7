//! The offloaded flow table: the host's authoritative shadow (records and index) and the
//! commands that make the NIC's table its replica.
//!
//! Every change is decided on the shadow first, then written as commands in an order that keeps
//! every installed flow findable at every step: a cuckoo move writes the slot's new place before
//! it clears the old one, an insert writes the record with its two slots, a remove clears them.
//! Commands are queued and go out in batches, one doorbell each, at [`FlowTable::commit`]; a
//! command the NIC refuses is rolled back on the shadow and reported.

use crate::placement::{Entry, GeometryError, Plan, ShadowIndex};
use host_driver::{DriverError, Nic};
use rtl_spec::codes::{ErrorCode, FlowCause, Opcode, Status};
use rtl_spec::formats::{
    CommandFlags, DirParams, FlowCommand, FlowRecord, FlowTuple, IndexPos, IndexSlot, LookupKey, ModifyMask,
    NextHopEntry, RecordCtl,
};
use rtl_spec::hash::{KeyHash, Seeds};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

/// Cuckoo moves tried before a key goes to the stash or the table counts as full.
pub const MAX_MOVES: usize = 8;

/// A connection to offload: both directions as the NIC sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Client → VIP.
    pub orig: FlowTuple,
    /// Real server → LIP.
    pub reply: FlowTuple,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// IPv6 tuples.
    pub ipv6: bool,
    /// Next hop toward the real server.
    pub next_hop_orig: u16,
    /// Next hop back toward the client.
    pub next_hop_reply: u16,
    /// Idle timeout the NIC's ager applies, seconds (0: never).
    pub idle_timeout: u16,
    /// The slow path's handle for the connection, echoed in events.
    pub cookie: u32,
    /// Opaque to the NIC: the slow path's own state for the flow, kept in the record so that a
    /// restarted daemon can adopt the flow ([`FlowTable::adopt`]).
    pub host_state: u8,
    /// The counter set the NIC adds the flow's packets and bytes to, besides the record's own
    /// counters (0: none). Allocated with [`FlowTable::alloc_counter_set`]; one per real server
    /// of each service, so the bank holds per-server figures.
    pub counter_set: u16,
    /// A SYN-proxied flow's sequence translation (record flag `seq_adjust`, field
    /// `seq_delta`): added to the sequence number of reply packets, subtracted from the
    /// acknowledgement and SACK blocks of original ones. `None` for every other flow.
    pub seq_delta: Option<u32>,
}

impl Flow {
    /// The lookup key of one direction, as the NIC matches it.
    pub fn key(&self, reply: bool) -> LookupKey {
        LookupKey::new(if reply { self.reply } else { self.orig }, self.proto, self.ipv6)
    }
}

/// The key hashes of a flow's two tuples, computed once and carried to the install.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHashes {
    /// The original tuple's.
    pub orig: KeyHash,
    /// The reply tuple's.
    pub reply: KeyHash,
}

impl FlowHashes {
    /// Both tuples of `flow` hashed with `seeds` (the table's, [`FlowTable::seeds`]).
    pub fn of(flow: &Flow, seeds: Seeds) -> Self {
        FlowHashes { orig: seeds.key_hash(&flow.key(false)), reply: seeds.key_hash(&flow.key(true)) }
    }
}

/// A flow installed in the NIC: its record index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub u32);

/// Why a flow was not installed.
#[derive(Debug)]
pub enum InstallError {
    /// No record or no index slot is free: the connection stays on the host's software path.
    Full,
    /// The flow is not one the NIC can hold (protocol, addresses, next hop).
    Invalid(String),
    /// The device failed.
    Device(DriverError),
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallError::Full => write!(f, "the NIC flow table is full"),
            InstallError::Invalid(m) => write!(f, "the flow cannot be offloaded: {m}"),
            InstallError::Device(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for InstallError {}

/// What the table counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Flows installed.
    pub installs: u64,
    /// Installs refused because the table was full.
    pub full: u64,
    /// Flows removed.
    pub removes: u64,
    /// Cuckoo moves written.
    pub moves: u64,
    /// Commands the NIC refused (and the shadow rolled back).
    pub command_errors: u64,
    /// Times the device was lost (stopped answering, reset behind the driver's back, its
    /// connection gone) and brought back: reset or reconnected, and rewritten from the shadow.
    /// Only successful recoveries count.
    pub recoveries: u64,
    /// Attempts to bring a lost device back that failed (retried with backoff).
    pub recovery_failures: u64,
    /// Flows adopted from the NIC's table at start ([`FlowTable::adopt`]).
    pub adopted: u64,
}

/// A flow's counters as the NIC keeps them, per direction (original, reply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Packets forwarded.
    pub packets: [u32; 2],
    /// Bytes (IP length) forwarded.
    pub bytes: [u64; 2],
    /// OR of the TCP flags seen.
    pub tcp_flags: [u8; 2],
    /// Milliseconds since the last hit.
    pub idle_ms: u32,
}

/// What the NIC reports about flows, for the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// A flow went idle, saw a FIN or RST, was deleted with a report, or was evicted by the
    /// NIC (then it is already gone from the table).
    Flow {
        /// The flow.
        handle: Handle,
        /// The slow path's cookie.
        cookie: u32,
        /// Why the NIC reported it (idle, FIN, RST, host delete, eviction).
        cause: FlowCause,
        /// Its counters at that moment.
        counters: FlowCounters,
    },
    /// The device reported an error (code, detail).
    DeviceError(Option<ErrorCode>, u32),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Installed {
    /// The install's sequence number: a refusal reaped late undoes this install only, not a
    /// later one that reused the record.
    pub(crate) seq: u64,
    pub(crate) flow: Flow,
    pub(crate) orig_pos: IndexPos,
    pub(crate) reply_pos: IndexPos,
}

/// What a queued command undoes on the shadow if the NIC refuses it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Undo {
    Nothing,
    Insert { record: u32, seq: u64, cookie: u32 },
}

/// A command the NIC refused, as the table reports it once the shadow is rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An install: the flow is not offloaded after all (its record was released), and its
    /// connection belongs on the host's software path.
    Install {
        /// The handle the install had returned (no longer the flow's).
        handle: Handle,
        /// The slow path's cookie of the flow.
        cookie: u32,
        /// Why the NIC refused it.
        status: Status,
    },
    /// Any other command (a remove, a move, a next hop, a touch): nothing for the caller to
    /// undo, reported for the record.
    Command {
        /// The command's opcode (`rtl_spec::codes::Opcode`).
        opcode: u8,
        /// The record it named.
        record: u32,
        /// Why the NIC refused it.
        status: Status,
    },
}

/// The shadow and its replica.
pub struct FlowTable {
    pub(crate) nic: Nic,
    pub(crate) index: ShadowIndex,
    pub(crate) records: Vec<Option<Installed>>,
    pub(crate) free: Vec<u32>,
    pub(crate) next_hops: Vec<Option<NextHopEntry>>,
    /// The outer addresses of each `Tunnel` entry (spec 1.3), beside `next_hops`.
    pub(crate) tunnels: Vec<rtl_spec::formats::NextHopTunnel>,
    /// Commands decided on the shadow and not yet written to the ring.
    pub(crate) queue: std::collections::VecDeque<(FlowCommand, Undo)>,
    /// Commands written to the ring whose completions have not been reaped, in ring order.
    pub(crate) in_flight: std::collections::VecDeque<(FlowCommand, Undo)>,
    /// Refusals reaped by [`FlowTable::poll_completions`] and not yet taken.
    pub(crate) refused: Vec<Refusal>,
    pub(crate) max_in_flight: usize,
    /// Install sequence numbers (see [`Installed::seq`]).
    pub(crate) seq: u64,
    /// The device's reset count after its last bring-up (see [`host_driver::Nic::reset_count`]).
    pub(crate) resets: u32,
    /// A cuckoo search failed and nothing was removed since: further installs only try their
    /// home buckets and the stash (O(1)), so a full table refuses fast instead of searching
    /// in vain for every new connection.
    pub(crate) searches_futile: bool,
    pub(crate) stats: Stats,
    /// Set while the device is lost and not yet brought back.
    pub(crate) fault: Option<crate::health::DeviceFault>,
    /// The counter bank's shadow: allocation, flows naming each set, the read buffer.
    pub(crate) bank: crate::bank::BankShadow,
}

impl FlowTable {
    /// Takes over a brought-up NIC whose table is empty. Fails when the NIC's geometry is not
    /// one the shadow can hold.
    pub fn new(mut nic: Nic) -> Result<Self, GeometryError> {
        let g = nic.info().geometry.clone();
        let resets = nic.reset_count();
        Ok(FlowTable {
            index: ShadowIndex::new(g.buckets, g.slots_per_bucket, g.stash, g.seed_a, g.seed_b)?,
            records: vec![None; g.records as usize],
            // Popped from the end: low indexes first, which keeps dumps readable.
            free: (0..g.records).rev().collect(),
            next_hops: vec![None; g.next_hops as usize],
            tunnels: vec![rtl_spec::formats::NextHopTunnel::default(); g.next_hops as usize],
            queue: std::collections::VecDeque::new(),
            in_flight: std::collections::VecDeque::new(),
            refused: Vec::new(),
            max_in_flight: nic.command_room() as usize,
            seq: 0,
            resets,
            searches_futile: false,
            stats: Stats::default(),
            fault: None,
            bank: crate::bank::BankShadow::new(nic.counter_sets()),
            nic,
        })
    }

    /// Gives up the device without resetting it (a daemon exiting: the NIC keeps its table).
    pub fn nic_into_transport(self) -> Box<dyn host_driver::transport::Transport> {
        self.nic.into_transport()
    }

    /// The NIC, read-only (what it is: `info()`; whether it has interrupts).
    pub fn nic_ref(&self) -> &Nic {
        &self.nic
    }

    /// Lends the device's exception and inject rings (and their frame pool) to the code that
    /// moves packets ([`host_driver::Nic::take_queues`]): the table keeps the command and event
    /// rings only. `None` when they were taken since the last bring-up; after a recovery
    /// ([`crate::DeviceCheck::Recovered`], or one inside [`Self::commit`]) the queues taken
    /// before are inert ([`host_driver::Queues::is_live`]) and new ones are here to take.
    pub fn take_queues(&mut self) -> Option<host_driver::Queues> {
        self.nic.take_queues()
    }

    /// Records the NIC holds (the table's capacity in flows).
    pub fn capacity(&self) -> u32 {
        self.records.len() as u32
    }

    /// Next-hop entries the NIC holds.
    pub fn next_hop_capacity(&self) -> u32 {
        self.next_hops.len() as u32
    }

    /// Rewrites a live flow's cookie (a flow adopted after a restart gets its new owner's).
    pub fn set_cookie(&mut self, h: Handle, cookie: u32) -> Result<(), InstallError> {
        let inst = self
            .records
            .get_mut(h.0 as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| InstallError::Invalid(format!("no flow at record {}", h.0)))?;
        inst.flow.cookie = cookie;
        let rec = Self::record_of(&inst.flow);
        let mut cmd = FlowCommand {
            opcode: Opcode::Modify.into(),
            record: U32::new(h.0),
            arg: ModifyMask::new().with_cookie(true).into_bits(),
            ..FlowCommand::default()
        };
        cmd.payload[..128].copy_from_slice(rec.as_bytes());
        self.queue.push_back((cmd, Undo::Nothing));
        Ok(())
    }

    /// The NIC, for what the table does not wrap (the daemon's interrupt wait, tests).
    pub fn nic(&mut self) -> &mut Nic {
        &mut self.nic
    }

    /// The table's own counters (installs, refusals, moves, recoveries).
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live flows.
    pub fn occupancy(&self) -> u32 {
        self.records.len() as u32 - self.free.len() as u32
    }

    /// The flow behind a handle.
    pub fn get(&self, h: Handle) -> Option<&Flow> {
        self.records.get(h.0 as usize)?.as_ref().map(|i| &i.flow)
    }

    /// Writes next-hop entry `n` (one command, whatever the number of flows using it).
    pub fn set_next_hop(&mut self, n: u16, entry: NextHopEntry) -> Result<(), InstallError> {
        self.set_next_hop_tunnel(n, entry, rtl_spec::formats::NextHopTunnel::default())
    }

    /// Writes next-hop entry `n` with the outer addresses `tunnel` a `Tunnel` action uses
    /// (spec 1.3; the device must have capability `TUNNEL`). For another action `tunnel` is
    /// written all the same and the NIC ignores it.
    pub fn set_next_hop_tunnel(
        &mut self,
        n: u16,
        entry: NextHopEntry,
        tunnel: rtl_spec::formats::NextHopTunnel,
    ) -> Result<(), InstallError> {
        if entry.ctl.hit_action() == Some(rtl_spec::codes::NextHopAction::Tunnel)
            && !self.nic.info().capability_names.iter().any(|c| c == "TUNNEL")
        {
            return Err(InstallError::Invalid("the device cannot tunnel (no TUNNEL)".into()));
        }
        if usize::from(n) >= self.next_hops.len() {
            return Err(InstallError::Invalid(format!(
                "next hop {n} beyond the table's {}",
                self.next_hops.len()
            )));
        }
        let mut cmd = FlowCommand {
            opcode: Opcode::NextHopSet.into(),
            arg: U32::new(u32::from(n)),
            ..FlowCommand::default()
        };
        cmd.payload[..16].copy_from_slice(entry.as_bytes());
        cmd.payload[16..48].copy_from_slice(tunnel.as_bytes());
        self.next_hops[usize::from(n)] = Some(entry);
        self.tunnels[usize::from(n)] = tunnel;
        self.queue.push_back((cmd, Undo::Nothing));
        Ok(())
    }

    pub(crate) fn record_of(flow: &Flow) -> FlowRecord {
        let (o3, o4) = rtl_spec::checksum::direction_deltas(&flow.orig, &flow.reply.reversed(), flow.ipv6);
        let (r3, r4) = rtl_spec::checksum::direction_deltas(&flow.reply, &flow.orig.reversed(), flow.ipv6);
        FlowRecord {
            ctl: RecordCtl::new()
                .with_valid(true)
                .with_ipv6(flow.ipv6)
                .with_proto(flow.proto)
                .with_host_state(flow.host_state)
                .with_counter_set(flow.counter_set)
                .with_seq_adjust(flow.seq_delta.is_some()),
            cookie: U32::new(flow.cookie),
            seq_delta: U32::new(flow.seq_delta.unwrap_or(0)),
            orig: flow.orig,
            reply: flow.reply,
            idle_timeout: U16::new(flow.idle_timeout),
            dir_orig: DirParams {
                next_hop: U16::new(flow.next_hop_orig),
                l3_delta: U16::new(o3),
                l4_delta: U16::new(o4),
            },
            dir_reply: DirParams {
                next_hop: U16::new(flow.next_hop_reply),
                l3_delta: U16::new(r3),
                l4_delta: U16::new(r4),
            },
            ..FlowRecord::default()
        }
    }

    pub(crate) fn validate(&self, flow: &Flow) -> Result<(), InstallError> {
        if flow.proto != 6 && flow.proto != 17 {
            return Err(InstallError::Invalid(format!(
                "protocol {} (only TCP and UDP are offloaded)",
                flow.proto
            )));
        }
        let hops = self.next_hops.len();
        if usize::from(flow.next_hop_orig) >= hops || usize::from(flow.next_hop_reply) >= hops {
            return Err(InstallError::Invalid("next hop beyond the table".into()));
        }
        if !self.bank.nameable(flow.counter_set) {
            return Err(InstallError::Invalid(format!("counter set {} is not allocated", flow.counter_set)));
        }
        if flow.seq_delta.is_some() && !self.nic.info().capability_names.iter().any(|c| c == "SEQ_ADJUST") {
            return Err(InstallError::Invalid(
                "the device cannot translate sequence numbers (no SEQ_ADJUST)".into(),
            ));
        }
        if flow.key(false) == flow.key(true) {
            return Err(InstallError::Invalid("both directions carry the same tuple".into()));
        }
        if !flow.ipv6
            && [flow.orig, flow.reply]
                .iter()
                .any(|t| t.src_addr[4..] != [0; 12] || t.dst_addr[4..] != [0; 12])
        {
            return Err(InstallError::Invalid("IPv4 flow with bytes beyond the IPv4 address".into()));
        }
        Ok(())
    }

    /// Queues a plan's moves, make-before-break: each entry's new slot is written before its
    /// old one is cleared, and the plan lists the last hop of a chain first.
    fn queue_moves(&mut self, plan: &Plan) {
        for m in &plan.moves {
            let mut write =
                FlowCommand { opcode: Opcode::IndexWrite.into(), slot_orig: m.to, ..FlowCommand::default() };
            write.payload[..8].copy_from_slice(self.index.word_of(&m.entry).as_bytes());
            let clear = FlowCommand {
                opcode: Opcode::IndexWrite.into(),
                slot_orig: m.from,
                ..FlowCommand::default()
            };
            self.queue.push_back((write, Undo::Nothing));
            self.queue.push_back((clear, Undo::Nothing));
            self.stats.moves += 1;
            // The shadow keeps each record's own positions current for its Delete.
            if let Some(Some(inst)) = self.records.get_mut(m.entry.record as usize) {
                if m.entry.reply {
                    inst.reply_pos = m.to;
                } else {
                    inst.orig_pos = m.to;
                }
            }
        }
    }

    /// The table's placement seeds: the slow path hashes each tuple once with them
    /// ([`FlowHashes::of`]) and carries the hashes to [`Self::install_hashed`].
    pub fn seeds(&self) -> Seeds {
        self.index.seeds()
    }

    /// Installs a flow. `Full` means no record or slot is free: the connection stays on the
    /// host's software path, nothing is lost.
    pub fn install(&mut self, flow: Flow) -> Result<Handle, InstallError> {
        let hashes = FlowHashes::of(&flow, self.seeds());
        self.install_hashed(flow, hashes)
    }

    /// Brings the home buckets of a flow about to be installed into cache (see
    /// [`ShadowIndex::prefetch`]); a caller with a batch prefetches all of it first.
    pub fn prefetch(&self, hashes: FlowHashes) {
        self.index.prefetch(hashes.orig);
        self.index.prefetch(hashes.reply);
    }

    /// [`Self::install`] with the tuples' hashes computed by the caller with [`Self::seeds`]
    /// (once, on the connection's first packet). Hashes that are not the tuples' are a caller
    /// bug the NIC would refuse (`BadPlacement`); the shadow rolls the install back then.
    pub fn install_hashed(&mut self, flow: Flow, hashes: FlowHashes) -> Result<Handle, InstallError> {
        self.validate(&flow)?;
        let Some(&record) = self.free.last() else {
            self.stats.full += 1;
            return Err(InstallError::Full);
        };
        let (key_o, key_r) = (flow.key(false), flow.key(true));
        let records = &self.records;
        let holds = |key: LookupKey| {
            move |e: &Entry| {
                records
                    .get(e.record as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|i| i.flow.key(e.reply) == key)
            }
        };
        if self.index.find(hashes.orig, holds(key_o)).is_some()
            || self.index.find(hashes.reply, holds(key_r)).is_some()
        {
            return Err(InstallError::Invalid("a flow with one of these tuples is installed".into()));
        }
        // Both keys or neither: a record that does not fit leaves the index as it was.
        let moves = if self.searches_futile { 0 } else { MAX_MOVES };
        let Some(plan) = self.index.place_record(record, hashes.orig, hashes.reply, moves) else {
            self.stats.full += 1;
            self.searches_futile = true;
            return Err(InstallError::Full);
        };
        self.queue_moves(&plan.orig);
        self.queue_moves(&plan.reply);
        let (orig_pos, reply_pos) = (plan.orig.target, plan.reply.target);
        self.free.pop();
        self.seq += 1;
        let seq = self.seq;
        self.records[record as usize] = Some(Installed { seq, flow, orig_pos, reply_pos });
        self.bank.retain(flow.counter_set);
        let rec = Self::record_of(&flow);
        let mut cmd = FlowCommand {
            opcode: Opcode::Insert.into(),
            record: U32::new(record),
            cookie: U64::new(seq),
            slot_orig: orig_pos,
            slot_reply: reply_pos,
            ..FlowCommand::default()
        };
        cmd.payload[..128].copy_from_slice(rec.as_bytes());
        self.queue.push_back((cmd, Undo::Insert { record, seq, cookie: flow.cookie }));
        self.stats.installs += 1;
        Ok(Handle(record))
    }

    /// Removes a flow (its record and both slots). With `report`, the NIC sends its final
    /// counters as a flow-info event (cause HOST).
    pub fn remove(&mut self, h: Handle, report: bool) -> Result<(), InstallError> {
        let inst = self.take(h)?;
        let cmd = FlowCommand {
            opcode: Opcode::Delete.into(),
            flags: CommandFlags::new().with_report(report),
            record: U32::new(h.0),
            slot_orig: inst.orig_pos,
            slot_reply: inst.reply_pos,
            ..FlowCommand::default()
        };
        self.queue.push_back((cmd, Undo::Nothing));
        self.stats.removes += 1;
        Ok(())
    }

    pub(crate) fn take(&mut self, h: Handle) -> Result<Installed, InstallError> {
        let inst = self
            .records
            .get_mut(h.0 as usize)
            .and_then(Option::take)
            .ok_or_else(|| InstallError::Invalid(format!("no flow at record {}", h.0)))?;
        self.index.clear(inst.orig_pos);
        self.index.clear(inst.reply_pos);
        self.bank.release(inst.flow.counter_set);
        self.free.push(h.0);
        self.searches_futile = false;
        Ok(inst)
    }

    /// Points a flow at other next hops (e.g. a real server's neighbour moved).
    pub fn set_flow_next_hops(&mut self, h: Handle, orig: u16, reply: u16) -> Result<(), InstallError> {
        let hops = self.next_hops.len();
        if usize::from(orig) >= hops || usize::from(reply) >= hops {
            return Err(InstallError::Invalid("next hop beyond the table".into()));
        }
        let inst = self
            .records
            .get_mut(h.0 as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| InstallError::Invalid(format!("no flow at record {}", h.0)))?;
        inst.flow.next_hop_orig = orig;
        inst.flow.next_hop_reply = reply;
        let rec = Self::record_of(&inst.flow);
        let mut cmd = FlowCommand {
            opcode: Opcode::Modify.into(),
            record: U32::new(h.0),
            arg: ModifyMask::new().with_next_hops(true).into_bits(),
            ..FlowCommand::default()
        };
        cmd.payload[..128].copy_from_slice(rec.as_bytes());
        self.queue.push_back((cmd, Undo::Nothing));
        Ok(())
    }

    /// Marks a flow as just seen (the host forwarded its packets itself), so the NIC's ager
    /// restarts its idle clock.
    pub fn touch(&mut self, h: Handle) -> Result<(), InstallError> {
        if self.get(h).is_none() {
            return Err(InstallError::Invalid(format!("no flow at record {}", h.0)));
        }
        let cmd =
            FlowCommand { opcode: Opcode::Touch.into(), record: U32::new(h.0), ..FlowCommand::default() };
        self.queue.push_back((cmd, Undo::Nothing));
        Ok(())
    }

    /// Removes every flow (one Flush command, whatever their number).
    pub fn flush_all(&mut self) {
        let handles: Vec<Handle> = self.live_records().map(|(h, _)| h).collect();
        for h in handles {
            let _ = self.take(h);
            self.stats.removes += 1;
        }
        self.queue.push_back((
            FlowCommand { opcode: Opcode::Flush.into(), ..FlowCommand::default() },
            Undo::Nothing,
        ));
    }

    /// Removes every flow to a VIP (address and port as the original tuple's destination).
    /// Returns how many.
    pub fn flush_vip(&mut self, addr: [u8; 16], port: u16) -> usize {
        self.flush_where(|f| f.orig.dst_addr == addr && f.orig.dst_port.get() == port)
    }

    /// Removes every flow to a real server (the reply tuple's source). Returns how many.
    pub fn flush_backend(&mut self, addr: [u8; 16], port: u16) -> usize {
        self.flush_where(|f| f.reply.src_addr == addr && f.reply.src_port.get() == port)
    }

    fn flush_where(&mut self, pick: impl Fn(&Flow) -> bool) -> usize {
        let handles: Vec<Handle> = self.live_records().filter(|(_, f)| pick(f)).map(|(h, _)| h).collect();
        for h in &handles {
            let _ = self.remove(*h, false);
        }
        handles.len()
    }

    /// The index slot the shadow says the NIC holds at `pos` (for checks and dumps).
    pub fn shadow_slot(&self, pos: IndexPos) -> IndexSlot {
        self.index.slot_word(pos)
    }

    /// The shadow's live record indexes.
    pub fn live_records(&self) -> impl Iterator<Item = (Handle, &Flow)> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|inst| (Handle(i as u32), &inst.flow)))
    }

    /// Every live index position in the shadow with its slot.
    pub fn shadow_positions(&self) -> Vec<(IndexPos, IndexSlot)> {
        self.records
            .iter()
            .flatten()
            .flat_map(|i| [i.orig_pos, i.reply_pos])
            .map(|p| (p, self.index.slot_word(p)))
            .collect()
    }

    /// The record the shadow expects the NIC to hold for `h` (counters aside).
    pub fn expected_record(&self, h: Handle) -> Option<FlowRecord> {
        self.get(h).map(Self::record_of)
    }
}
