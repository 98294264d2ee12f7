//! The offloaded flow table: the host's authoritative shadow (records and index) and the
//! commands that make the NIC's table its replica.
//!
//! Every change is decided on the shadow first, then written as commands in an order that keeps
//! every installed flow findable at every step: a cuckoo move writes the slot's new place before
//! it clears the old one, an insert writes the record with its two slots, a remove clears them.
//! Commands are queued and go out in batches, one doorbell each, at [`FlowTable::commit`]; a
//! command the NIC refuses is rolled back on the shadow and reported.
//!
//! The shadow is the compact record store (`crate::records`: 41 bytes a record, IPv6 tuples and
//! timestamp deltas in side stores) and the index ([`crate::placement`]: 8 bytes a slot). A [`Flow`] is rebuilt from
//! its record when asked for ([`FlowTable::get`], [`FlowTable::live_records`]). A record does not
//! keep its two index positions: a remove hashes its tuples again and finds them, and the index
//! asks the records for the full hash of an entry it moves (`FlowTable::key_hash_of`).

pub use crate::flow::{Flow, FlowCounters, FlowEvent, FlowHashes, Handle, InstallError, Refusal, Stats};
use crate::placement::{GeometryError, Occupant, Plan, ShadowIndex};
use crate::records::Records;
use host_driver::Nic;
use rtl_spec::codes::Opcode;
use rtl_spec::formats::{
    CommandFlags, DirParams, FlowCommand, FlowRecord, IndexPos, IndexSlot, LookupKey, ModifyMask,
    NextHopEntry, RecordCtl, RecordExt,
};
use rtl_spec::hash::{KeyHash, Seeds};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

/// Cuckoo moves tried before a key goes to the stash or the table counts as full.
pub const MAX_MOVES: usize = 8;

/// What a queued command undoes on the shadow if the NIC refuses it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Undo {
    Nothing,
    /// An install (its record and cookie). A refusal reaped late undoes this install only, not
    /// a later one that reused the record: see [`FlowTable::orphans`].
    Insert {
        record: u32,
        cookie: u32,
    },
}

/// What a written command's completion needs of it: a refusal names its opcode and record, and
/// an Insert's slots say where its tuples went. The in-flight queue keeps this, not the
/// 256-byte command, which the ring already holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    pub(crate) opcode: u8,
    pub(crate) record: u32,
    pub(crate) slot_orig: IndexPos,
    pub(crate) slot_reply: IndexPos,
}

impl Sent {
    pub(crate) fn of(cmd: &FlowCommand) -> Self {
        Sent {
            opcode: cmd.opcode,
            record: cmd.record.get(),
            slot_orig: cmd.slot_orig,
            slot_reply: cmd.slot_reply,
        }
    }
}

/// The shadow and its replica.
pub struct FlowTable {
    pub(crate) nic: Nic,
    pub(crate) index: ShadowIndex,
    pub(crate) records: Records,
    pub(crate) next_hops: Vec<Option<NextHopEntry>>,
    /// The outer addresses of each `Tunnel` entry (spec 1.3), beside `next_hops`.
    pub(crate) tunnels: Vec<rtl_spec::formats::NextHopTunnel>,
    /// Commands decided on the shadow and not yet written to the ring.
    pub(crate) queue: std::collections::VecDeque<(FlowCommand, Undo)>,
    /// Commands written to the ring whose completions have not been reaped, in ring order.
    pub(crate) in_flight: std::collections::VecDeque<(Sent, Undo)>,
    /// Refusals reaped by [`FlowTable::poll_completions`] and not yet taken.
    pub(crate) refused: Vec<Refusal>,
    /// [`FlowTable::poll_completions`]'s buffer, kept so that reaping allocates nothing.
    pub(crate) reaped: Vec<rtl_spec::formats::Completion>,
    pub(crate) max_in_flight: usize,
    /// Install sequence numbers, the Insert commands' cookies (the NIC echoes them).
    pub(crate) seq: u64,
    /// Records taken while the Insert of their install was pending (queued or in flight), with
    /// how many such Inserts are still to complete. An Insert completing finds its record here
    /// when its install is gone (the record may hold another install by then): it settles
    /// nothing and a refusal of it undoes nothing. Otherwise its install is the record's and is
    /// settled ([`Records::settle`]). Empty but for flows removed within a batch of being
    /// installed; emptied when the device is rewritten and every pending command dropped.
    pub(crate) orphans: std::collections::HashMap<u32, u32>,
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
            records: Records::new(g.records)?,
            next_hops: vec![None; g.next_hops as usize],
            tunnels: vec![rtl_spec::formats::NextHopTunnel::default(); g.next_hops as usize],
            queue: std::collections::VecDeque::new(),
            in_flight: std::collections::VecDeque::new(),
            refused: Vec::new(),
            reaped: Vec::new(),
            max_in_flight: nic.command_room() as usize,
            seq: 0,
            orphans: std::collections::HashMap::new(),
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
        self.records.capacity()
    }

    /// Next-hop entries the NIC holds.
    pub fn next_hop_capacity(&self) -> u32 {
        self.next_hops.len() as u32
    }

    /// Rewrites a live flow's cookie (a flow adopted after a restart gets its new owner's).
    pub fn set_cookie(&mut self, h: Handle, cookie: u32) -> Result<(), InstallError> {
        let flow = self.records.set_cookie(h.0, cookie).ok_or_else(|| no_flow(h))?;
        let mut cmd = FlowCommand {
            opcode: Opcode::Modify.into(),
            record: U32::new(h.0),
            arg: ModifyMask::new().with_cookie(true).into_bits(),
            ..FlowCommand::default()
        };
        Self::write_payload(&flow, &mut cmd);
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
        self.records.live()
    }

    /// Stash entries in use (of both tuples), as the NIC's `STASH_USED` counts them.
    pub fn stash_used(&self) -> u32 {
        self.index.stash_used()
    }

    /// The flow behind a handle (rebuilt from its compact record).
    pub fn get(&self, h: Handle) -> Option<Flow> {
        self.records.flow(h.0)
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

    /// The payload of an Insert or Modify of `flow`: its record, then (spec 1.4) its extension
    /// word at bytes 128..132. An Insert always writes the word, so a reused record never keeps
    /// another flow's delta; a Modify applies only what its mask names.
    pub(crate) fn write_payload(flow: &Flow, cmd: &mut FlowCommand) {
        let ext = RecordExt { ts_delta: U32::new(flow.ts_delta) };
        cmd.payload[..128].copy_from_slice(Self::record_of(flow).as_bytes());
        cmd.payload[128..132].copy_from_slice(ext.as_bytes());
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
        if flow.ts_delta != 0 && !self.nic.info().capability_names.iter().any(|c| c == "TS_ADJUST") {
            return Err(InstallError::Invalid(
                "the device cannot translate TCP timestamps (no TS_ADJUST)".into(),
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

    /// Queues a plan's moves, the plan listing the last hop of a chain first. Each move is one
    /// `IndexMove` where the device has `INDEX_MOVE` (spec 1.5); otherwise two `IndexWrite`s,
    /// make-before-break: the entry's new slot is written before its old one is cleared.
    fn queue_moves(&mut self, plan: &Plan) {
        let one_command = rtl_spec::regs::identity::CAPS::INDEX_MOVE.get(self.nic.info().capabilities) != 0;
        for m in &plan.moves {
            if one_command {
                let mv = FlowCommand {
                    opcode: Opcode::IndexMove.into(),
                    record: U32::new(m.entry.record),
                    slot_orig: m.from,
                    slot_reply: m.to,
                    ..FlowCommand::default()
                };
                self.queue.push_back((mv, Undo::Nothing));
            } else {
                let mut write = FlowCommand {
                    opcode: Opcode::IndexWrite.into(),
                    slot_orig: m.to,
                    ..FlowCommand::default()
                };
                write.payload[..8].copy_from_slice(self.index.word_of(&m.entry).as_bytes());
                let clear = FlowCommand {
                    opcode: Opcode::IndexWrite.into(),
                    slot_orig: m.from,
                    ..FlowCommand::default()
                };
                self.queue.push_back((write, Undo::Nothing));
                self.queue.push_back((clear, Undo::Nothing));
            }
            self.stats.moves += 1;
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
        let Some(record) = self.records.next_free() else {
            self.stats.full += 1;
            return Err(InstallError::Full);
        };
        let (key_o, key_r) = (flow.key(false), flow.key(true));
        let records = &self.records;
        let holds = |key: LookupKey| move |o: Occupant| records.key(o.record, o.reply) == Some(key);
        if self.index.find(hashes.orig, holds(key_o)).is_some()
            || self.index.find(hashes.reply, holds(key_r)).is_some()
        {
            return Err(InstallError::Invalid("a flow with one of these tuples is installed".into()));
        }
        // Both keys or neither: a record that does not fit leaves the index as it was.
        let moves = if self.searches_futile { 0 } else { MAX_MOVES };
        let seeds = self.index.seeds();
        let keys = |r: u32, reply: bool| key_hash_in(records, seeds, r, reply);
        let Some(plan) = self.index.place_record(record, hashes.orig, hashes.reply, moves, &keys) else {
            self.stats.full += 1;
            self.searches_futile = true;
            return Err(InstallError::Full);
        };
        self.queue_moves(&plan.orig);
        self.queue_moves(&plan.reply);
        let (orig_pos, reply_pos) = (plan.orig.target, plan.reply.target);
        self.seq += 1;
        let seq = self.seq;
        let stored = self.records.insert(&flow);
        debug_assert_eq!(stored, Some(record));
        self.bank.retain(flow.counter_set);
        let mut cmd = FlowCommand {
            opcode: Opcode::Insert.into(),
            record: U32::new(record),
            cookie: U64::new(seq),
            slot_orig: orig_pos,
            slot_reply: reply_pos,
            ..FlowCommand::default()
        };
        Self::write_payload(&flow, &mut cmd);
        self.queue.push_back((cmd, Undo::Insert { record, cookie: flow.cookie }));
        self.stats.installs += 1;
        Ok(Handle(record))
    }

    /// Removes a flow (its record and both slots). With `report`, the NIC sends its final
    /// counters as a flow-info event (cause HOST).
    pub fn remove(&mut self, h: Handle, report: bool) -> Result<(), InstallError> {
        let (_, [orig_pos, reply_pos]) = self.take(h, None)?;
        let cmd = FlowCommand {
            opcode: Opcode::Delete.into(),
            flags: CommandFlags::new().with_report(report),
            record: U32::new(h.0),
            slot_orig: orig_pos.unwrap_or_default(),
            slot_reply: reply_pos.unwrap_or_default(),
            ..FlowCommand::default()
        };
        self.queue.push_back((cmd, Undo::Nothing));
        self.stats.removes += 1;
        Ok(())
    }

    /// Drops a flow from the shadow: its record and both index slots. Returns the flow and the
    /// positions its tuples had (`None` only if the index did not hold one, which the shadow's
    /// invariants rule out). `hint` is where the tuples were placed, if the caller knows
    /// (a refused Insert's slots): a position that still points at the record is taken as it is,
    /// otherwise the tuple is hashed again and found, or, for a flow installed with hashes that
    /// are not its tuples', found where its pending Insert put it.
    pub(crate) fn take(
        &mut self,
        h: Handle,
        hint: Option<[IndexPos; 2]>,
    ) -> Result<(Flow, [Option<IndexPos>; 2]), InstallError> {
        if self.records.is_pending(h.0) {
            *self.orphans.entry(h.0).or_default() += 1;
        }
        let flow = self.records.remove(h.0).ok_or_else(|| no_flow(h))?;
        let mut at = [false, true].map(|reply| {
            let me = Occupant { record: h.0, reply };
            hint.map(|p| p[usize::from(reply)]).filter(|p| self.index.occupant(*p) == Some(me))
        });
        if at.contains(&None) {
            let found = self.positions_of(h.0, &flow);
            for (pos, found) in at.iter_mut().zip(found) {
                *pos = pos.or(found);
            }
        }
        for (reply, pos) in [false, true].into_iter().zip(&mut at) {
            let me = Occupant { record: h.0, reply };
            if pos.is_none() {
                // Placed with hashes that are not its tuples' (a caller bug the NIC refuses): the
                // record's Insert is still pending, and its slots say where.
                let queued = self.queue.iter().rev().map(|(c, _)| Sent::of(c));
                *pos = (queued.chain(self.in_flight.iter().rev().map(|(c, _)| *c)))
                    .filter(|c| c.opcode == u8::from(Opcode::Insert) && c.record == h.0)
                    .map(|c| if reply { c.slot_reply } else { c.slot_orig })
                    .find(|p| self.index.occupant(*p) == Some(me));
            }
            debug_assert!(
                pos.is_some(),
                "record {} has no {} slot",
                h.0,
                if reply { "reply" } else { "original" }
            );
            if let Some(p) = *pos {
                self.index.clear(p);
            }
        }
        self.bank.release(flow.counter_set);
        self.searches_futile = false;
        Ok((flow, at))
    }

    /// The positions of record `record`'s two tuples, found by hashing them again (the four
    /// buckets are fetched together, so their cache misses overlap).
    pub(crate) fn positions_of(&self, record: u32, flow: &Flow) -> [Option<IndexPos>; 2] {
        let seeds = self.index.seeds();
        let hashes = [false, true].map(|reply| key_hash_aligned(seeds, flow.key(reply)));
        self.prefetch(FlowHashes { orig: hashes[0], reply: hashes[1] });
        [false, true]
            .map(|reply| self.index.find_occupant(Occupant { record, reply }, hashes[usize::from(reply)]))
    }

    /// The full key hash of record `record`'s original (or reply) tuple, hashed again from the
    /// record: the index's key source (see [`crate::placement`]). Zero for a free record.
    pub(crate) fn key_hash_of(&self, record: u32, reply: bool) -> KeyHash {
        key_hash_in(&self.records, self.index.seeds(), record, reply)
    }

    /// Points a flow at other next hops (e.g. a real server's neighbour moved).
    pub fn set_flow_next_hops(&mut self, h: Handle, orig: u16, reply: u16) -> Result<(), InstallError> {
        let hops = self.next_hops.len();
        if usize::from(orig) >= hops || usize::from(reply) >= hops {
            return Err(InstallError::Invalid("next hop beyond the table".into()));
        }
        let flow = self.records.set_next_hops(h.0, orig, reply).ok_or_else(|| no_flow(h))?;
        let mut cmd = FlowCommand {
            opcode: Opcode::Modify.into(),
            record: U32::new(h.0),
            arg: ModifyMask::new().with_next_hops(true).into_bits(),
            ..FlowCommand::default()
        };
        Self::write_payload(&flow, &mut cmd);
        self.queue.push_back((cmd, Undo::Nothing));
        Ok(())
    }

    /// Marks a flow as just seen (the host forwarded its packets itself), so the NIC's ager
    /// restarts its idle clock.
    pub fn touch(&mut self, h: Handle) -> Result<(), InstallError> {
        if !self.records.is_live(h.0) {
            return Err(no_flow(h));
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
            let _ = self.take(h, None);
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
        self.index.slot_word(pos, &|r, reply| self.key_hash_of(r, reply))
    }

    /// The shadow's live records and their flows (rebuilt), lowest record first.
    pub fn live_records(&self) -> impl Iterator<Item = (Handle, Flow)> + '_ {
        self.records.iter().map(|(r, f)| (Handle(r), f))
    }

    /// Every live index position in the shadow with its slot: bucket slots in order, then the
    /// stash.
    pub fn shadow_positions(&self) -> Vec<(IndexPos, IndexSlot)> {
        self.index.occupants().map(|(p, _)| (p, self.shadow_slot(p))).collect()
    }

    /// The record the shadow expects the NIC to hold for `h` (counters aside).
    pub fn expected_record(&self, h: Handle) -> Option<FlowRecord> {
        self.get(h).map(|f| Self::record_of(&f))
    }

    /// The extension word the shadow expects the NIC to hold for `h` (spec 1.4).
    pub fn expected_ext(&self, h: Handle) -> Option<RecordExt> {
        self.get(h).map(|f| RecordExt { ts_delta: U32::new(f.ts_delta) })
    }
}

/// The error for a handle whose record is not live.
pub(crate) fn no_flow(h: Handle) -> InstallError {
    InstallError::Invalid(format!("no flow at record {}", h.0))
}

/// [`FlowTable::key_hash_of`] over the record store alone (so the index may be borrowed
/// mutably beside it).
fn key_hash_in(records: &Records, seeds: Seeds, record: u32, reply: bool) -> KeyHash {
    records.key(record, reply).map(|k| key_hash_aligned(seeds, k)).unwrap_or_default()
}

/// A lookup key at an 8-byte boundary: the hash's hardware path then reads it 8 bytes at a
/// time, with no byte-wise head and tail (the shadow hashes keys again on every remove).
#[repr(C, align(8))]
struct AlignedKey(LookupKey);

/// `seeds.key_hash(&key)`, the key aligned first (see [`AlignedKey`]).
fn key_hash_aligned(seeds: Seeds, key: LookupKey) -> KeyHash {
    seeds.key_hash(&AlignedKey(key).0)
}
