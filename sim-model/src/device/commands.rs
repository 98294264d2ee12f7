//! Flow-command processing: the command ring, validation of every command, execution and the
//! completion. A command is validated completely before anything is written, so one that fails
//! leaves the table exactly as it was. Insert and Modify carry a record's extension word (spec
//! 1.4, [`RecordExt`]) after the record; Read and Query report its `ts_delta`.

use super::Device;
use super::table::{allows, points_at};
use rtl_spec::codes::{FlowCause, FlowProto, NextHopAction, Opcode, Status};
use rtl_spec::formats::{
    Completion, CompletionFlags, FlowCommand, FlowRecord, IndexPos, IndexSlot, ModifyMask, NextHopEntry,
    NextHopTunnel, RecordExt, SlotWord,
};
use rtl_spec::regs::{control, identity, ring_id};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// What executing a command produced besides its status.
#[derive(Default)]
struct Outcome {
    completion: Completion,
    event: Option<rtl_spec::formats::Event>,
}

type CmdResult = Result<Outcome, Status>;

/// Commands fetched (and their table lines prefetched) ahead of executing them.
const FETCH: usize = 8;

/// How taking one command ended.
enum Taken {
    /// Executed (or refused) and completed.
    Done,
    /// Completed as `BadPhase`: the engine stops until the next doorbell.
    Stop,
    /// Executed, but its completion could not be written: the engine stops.
    CompletionLost,
}

impl Device {
    /// Takes commands from the command ring while there are some and the completion ring has
    /// room.
    ///
    /// Commands are fetched in bursts of up to [`FETCH`]: each burst's table lines (the index
    /// buckets its slots name, its records) are asked for before the first of them executes, so
    /// the burst's cache misses overlap, as a card's command engine keeps several table reads
    /// in flight. Fetching reads ahead only: a command is consumed (the consumer index moves
    /// past it) when it executes, and everything stops at the first that may not run.
    pub(super) fn process_commands(&mut self) {
        let cmd_id = ring_id::COMMAND as usize;
        let mut completed = 0;
        let mut burst = [FlowCommand::new_zeroed(); FETCH];
        'rings: while self.may_take_command() {
            let first = self.rings[cmd_id].cons;
            let want = (self.rings[cmd_id].used() as usize).min(FETCH);
            let mut fetched = 0;
            for (i, cmd) in burst.iter_mut().take(want).enumerate() {
                let addr = self.rings[cmd_id].entry_addr(first.wrapping_add(i as u32));
                if self.mem.read(addr, cmd.as_mut_bytes()).is_err() {
                    break;
                }
                self.table.prefetch_command(cmd);
                fetched += 1;
            }
            for cmd in &burst[..fetched] {
                if !self.may_take_command() {
                    break 'rings;
                }
                completed += 1;
                match self.take_command(cmd) {
                    Taken::Done => {}
                    Taken::Stop => break 'rings,
                    Taken::CompletionLost => {
                        completed -= 1;
                        break 'rings;
                    }
                }
            }
            if fetched < want {
                // The entry after the last fetched could not be read.
                if self.may_take_command() {
                    self.regs.error |= control::ERROR::DMA_READ.mask() as u32;
                }
                break;
            }
        }
        if completed > 0 {
            self.irq_notify(ring_id::COMPLETION, completed);
        }
    }

    /// Whether the command engine may take the next command: it runs, both rings are enabled,
    /// there is a command and the completion ring has room.
    fn may_take_command(&self) -> bool {
        let (cmd, cpl) = (&self.rings[ring_id::COMMAND as usize], &self.rings[ring_id::COMPLETION as usize]);
        !self.stalled && cmd.enabled && cmd.used() > 0 && cpl.enabled && !cpl.full()
    }

    /// Consumes the command at the ring's consumer index (`cmd`, as fetched), executes it and
    /// writes its completion.
    fn take_command(&mut self, cmd: &FlowCommand) -> Taken {
        let (cmd_id, cpl_id) = (ring_id::COMMAND as usize, ring_id::COMPLETION as usize);
        let index = self.rings[cmd_id].cons;
        self.rings[cmd_id].cons = index.wrapping_add(1);
        let phase_ok = cmd.flags.phase() == self.rings[cmd_id].phase(index);
        let (status, outcome) = if phase_ok {
            match self.execute(cmd) {
                Ok(o) => (Status::Ok, o),
                Err(s) => (s, Outcome::default()),
            }
        } else {
            self.regs.error |= control::ERROR::COMMAND_PHASE.mask() as u32;
            (Status::BadPhase, Outcome::default())
        };
        self.table_counters.commands += 1;
        if status != Status::Ok {
            self.table_counters.fails += 1;
        }
        let mut cpl = outcome.completion;
        cpl.opcode = cmd.opcode;
        cpl.status = status.into();
        cpl.record = cmd.record;
        cpl.cookie = cmd.cookie;
        cpl.index = U32::new(index);
        let cpl_index = self.rings[cpl_id].prod;
        cpl.flags.set_phase(self.rings[cpl_id].phase(cpl_index));
        if self.mem.write(self.rings[cpl_id].entry_addr(cpl_index), cpl.as_bytes()).is_err() {
            self.regs.error |= control::ERROR::DMA_WRITE.mask() as u32;
            return Taken::CompletionLost;
        }
        self.rings[cpl_id].prod = cpl_index.wrapping_add(1);
        if let Some(ev) = outcome.event {
            self.post_event(ev);
        }
        if phase_ok { Taken::Done } else { Taken::Stop }
    }

    fn execute(&mut self, cmd: &FlowCommand) -> CmdResult {
        let opcode = Opcode::try_from(cmd.opcode).map_err(|_| Status::BadOpcode)?;
        if cmd.reserved0 != 0
            || cmd.flags.reserved() != 0
            || cmd.reserved1.get() != 0
            || cmd.reserved2 != [0; 24]
        {
            return Err(Status::BadArgument);
        }
        match opcode {
            Opcode::Insert => self.cmd_insert(cmd),
            Opcode::Delete => self.cmd_delete(cmd),
            Opcode::Modify => self.cmd_modify(cmd),
            Opcode::Query => self.cmd_query(cmd),
            Opcode::Touch => {
                let index = self.live_record(cmd)?;
                self.table.records[index].last_seen = U32::new(self.now_ticks());
                self.table.idle_reported.clear(index);
                Ok(Outcome::default())
            }
            Opcode::Flush => {
                let removed = u64::from(self.table.occupancy);
                self.bank.release_all();
                self.table = super::table::FlowTable {
                    seed_a: self.table.seed_a,
                    seed_b: self.table.seed_b,
                    ..super::table::FlowTable::new(self.cfg.records, self.cfg.buckets, self.cfg.stash)
                };
                self.table_counters.deletes += removed;
                Ok(Outcome::default())
            }
            Opcode::NextHopSet => self.cmd_next_hop(cmd),
            Opcode::IndexWrite => self.cmd_index_write(cmd),
            Opcode::IndexMove => self.cmd_index_move(cmd),
            Opcode::Read => {
                let index = self.record_index(cmd)?;
                let bytes = self.table.records[index].as_bytes().to_vec();
                if self.mem.write(cmd.dma_addr.get(), &bytes).is_err() {
                    self.dma_error(
                        control::ERROR::DMA_WRITE.mask() as u32,
                        rtl_spec::codes::ErrorCode::DmaWrite,
                    );
                    return Err(Status::DmaError);
                }
                let completion =
                    Completion { ts_delta: U32::new(self.table.ts_delta(index)), ..Completion::default() };
                Ok(Outcome { completion, event: None })
            }
            Opcode::Nop => Ok(Outcome::default()),
            Opcode::CounterSetAlloc => self.cmd_set_alloc(cmd).map(|()| Outcome::default()),
            Opcode::CounterSetFree => self.cmd_set_free(cmd).map(|()| Outcome::default()),
            Opcode::CounterBankRead => self.cmd_bank_read(cmd).map(|()| Outcome::default()),
        }
    }

    fn record_index(&self, cmd: &FlowCommand) -> Result<usize, Status> {
        let index = cmd.record.get() as usize;
        if index < self.table.records.len() { Ok(index) } else { Err(Status::RecordOutOfRange) }
    }

    fn live_record(&self, cmd: &FlowCommand) -> Result<usize, Status> {
        let index = self.record_index(cmd)?;
        if self.table.records[index].ctl.valid() { Ok(index) } else { Err(Status::RecordNotLive) }
    }

    fn payload_record(cmd: &FlowCommand) -> FlowRecord {
        FlowRecord::read_from_prefix(&cmd.payload).map(|(r, _)| r).unwrap_or_default()
    }

    /// The record's extension word after it in the payload (bytes 128..132, spec 1.4), refused
    /// (`BadArgument`) when it asks for a translation this device does not have.
    fn payload_ext(&self, cmd: &FlowCommand) -> Result<RecordExt, Status> {
        let at = size_of::<FlowRecord>();
        let ext = cmd
            .payload
            .get(at..)
            .and_then(|b| RecordExt::read_from_prefix(b).ok())
            .map(|(e, _)| e)
            .unwrap_or_default();
        if ext.ts_delta.get() != 0 && identity::CAPS::TS_ADJUST.get(self.flash.caps) == 0 {
            return Err(Status::BadArgument);
        }
        Ok(ext)
    }

    /// Checks a record an Insert carries.
    fn validate_record(&self, rec: &FlowRecord) -> Result<(), Status> {
        let ctl = rec.ctl;
        let proto_ok = FlowProto::try_from(ctl.proto()).is_ok();
        let v4_ok = ctl.ipv6()
            || [&rec.orig, &rec.reply]
                .iter()
                .all(|t| t.src_addr[4..] == [0; 12] && t.dst_addr[4..] == [0; 12]);
        if !ctl.valid()
            || !self.bank.nameable(ctl.counter_set())
            || !proto_ok
            || !v4_ok
            || rec.key(false) == rec.key(true)
        {
            return Err(Status::MalformedRecord);
        }
        self.check_next_hops(rec)
    }

    fn check_next_hops(&self, rec: &FlowRecord) -> Result<(), Status> {
        let n = self.next_hops.len();
        if (rec.dir_orig.next_hop.get() as usize) < n && (rec.dir_reply.next_hop.get() as usize) < n {
            Ok(())
        } else {
            Err(Status::NextHopOutOfRange)
        }
    }

    fn cmd_insert(&mut self, cmd: &FlowCommand) -> CmdResult {
        let index = self.record_index(cmd)?;
        if self.table.records[index].ctl.valid() {
            return Err(Status::RecordLive);
        }
        let mut rec = Self::payload_record(cmd);
        let ext = self.payload_ext(cmd)?;
        self.validate_record(&rec)?;
        let (pos_o, pos_r) = (cmd.slot_orig, cmd.slot_reply);
        if !self.table.pos_in_range(pos_o) || !self.table.pos_in_range(pos_r) {
            return Err(Status::SlotOutOfRange);
        }
        if pos_o == pos_r {
            return Err(Status::BadPlacement);
        }
        let live = |p| self.table.slot(p).is_some_and(|s: &IndexSlot| s.word.valid());
        if live(pos_o) || live(pos_r) {
            return Err(Status::SlotLive);
        }
        // Each key hashed once: the placement check and the slot's signature share it.
        let (place_o, place_r) =
            (self.table.placement(&rec.key(false)), self.table.placement(&rec.key(true)));
        if !allows(pos_o, &place_o) || !allows(pos_r, &place_r) {
            return Err(Status::BadPlacement);
        }
        rec.last_seen = U32::new(self.now_ticks());
        rec.ctl.set_teardown(false);
        self.bank.retain(rec.ctl.counter_set());
        self.table.records[index] = rec;
        // Always, zero included: a reused record index never keeps an old delta.
        self.table.set_ext(index, ext.ts_delta.get());
        self.table.idle_reported.clear(index);
        self.table.occupancy += 1;
        for (pos, place, reply) in [(pos_o, place_o, false), (pos_r, place_r, true)] {
            let slot = IndexSlot {
                record: U32::new(index as u32),
                word: SlotWord::new().with_sig(place.sig).with_reply(reply).with_valid(true),
            };
            self.table.set_slot(pos, slot);
        }
        self.table_counters.inserts += 1;
        Ok(Outcome::default())
    }

    fn cmd_delete(&mut self, cmd: &FlowCommand) -> CmdResult {
        let index = self.live_record(cmd)?;
        let (pos_o, pos_r) = (cmd.slot_orig, cmd.slot_reply);
        if !self.table.pos_in_range(pos_o) || !self.table.pos_in_range(pos_r) {
            return Err(Status::SlotOutOfRange);
        }
        let at = |p, reply| self.table.slot(p).is_some_and(|s| points_at(*s, index as u32, reply));
        if !at(pos_o, false) || !at(pos_r, true) {
            return Err(Status::SlotMismatch);
        }
        let event = cmd.flags.report().then(|| self.flow_event(index as u32, FlowCause::Host, false));
        self.table.set_slot(pos_o, IndexSlot::default());
        self.table.set_slot(pos_r, IndexSlot::default());
        self.bank.release(self.table.records[index].ctl.counter_set());
        self.table.records[index] = FlowRecord::default();
        self.table.set_ext(index, 0);
        self.table.idle_reported.clear(index);
        self.table.occupancy -= 1;
        self.table_counters.deletes += 1;
        Ok(Outcome { event, ..Outcome::default() })
    }

    fn cmd_modify(&mut self, cmd: &FlowCommand) -> CmdResult {
        let index = self.live_record(cmd)?;
        let mask = ModifyMask::from_bits(cmd.arg);
        if mask.reserved() != 0 {
            return Err(Status::BadArgument);
        }
        let new = Self::payload_record(cmd);
        let ext = if mask.ts_delta() { Some(self.payload_ext(cmd)?) } else { None };
        if mask.next_hops() {
            self.check_next_hops(&new)?;
        }
        if mask.counter_set() {
            let (old, set) = (self.table.records[index].ctl.counter_set(), new.ctl.counter_set());
            if !self.bank.nameable(set) {
                return Err(Status::MalformedRecord);
            }
            self.bank.release(old);
            self.bank.retain(set);
        }
        let rec = &mut self.table.records[index];
        if mask.counter_set() {
            rec.ctl = rec.ctl.with_counter_set(new.ctl.counter_set());
        }
        if mask.next_hops() {
            rec.dir_orig.next_hop = new.dir_orig.next_hop;
            rec.dir_reply.next_hop = new.dir_reply.next_hop;
        }
        if mask.idle_timeout() {
            rec.idle_timeout = new.idle_timeout;
        }
        if mask.flags() {
            rec.ctl.set_auto_delete(new.ctl.auto_delete());
            rec.ctl.set_host_state(new.ctl.host_state());
        }
        if mask.seq_delta() {
            rec.ctl.set_seq_adjust(new.ctl.seq_adjust());
            rec.seq_delta = new.seq_delta;
        }
        if mask.cookie() {
            rec.cookie = new.cookie;
        }
        if mask.clear_teardown() {
            rec.ctl.set_teardown(false);
        }
        if let Some(ext) = ext {
            self.table.set_ext(index, ext.ts_delta.get());
        }
        Ok(Outcome::default())
    }

    fn cmd_query(&mut self, cmd: &FlowCommand) -> CmdResult {
        let index = self.live_record(cmd)?;
        let rec = self.table.records[index];
        let completion = Completion {
            flags: CompletionFlags::new().with_teardown(rec.ctl.teardown()),
            packets_orig: rec.packets_orig,
            packets_reply: rec.packets_reply,
            bytes_orig: rec.bytes_orig,
            bytes_reply: rec.bytes_reply,
            idle_ms: U32::new(self.idle_ms(rec.last_seen.get())),
            tcp_flags_orig: rec.tcp_flags_orig,
            tcp_flags_reply: rec.tcp_flags_reply,
            ts_delta: U32::new(self.table.ts_delta(index)),
            ..Completion::default()
        };
        if cmd.flags.clear() {
            let r = &mut self.table.records[index];
            r.packets_orig = U32::new(0);
            r.packets_reply = U32::new(0);
            r.bytes_orig = U64::new(0);
            r.bytes_reply = U64::new(0);
        }
        Ok(Outcome { completion, event: None })
    }

    fn cmd_next_hop(&mut self, cmd: &FlowCommand) -> CmdResult {
        let n = cmd.arg.get() as usize;
        if n >= self.next_hops.len() {
            return Err(Status::NextHopOutOfRange);
        }
        let (entry, rest) = NextHopEntry::read_from_prefix(&cmd.payload).unwrap_or_default();
        if entry.ctl.reserved() != 0 || usize::from(entry.ctl.port()) >= self.ports.len() {
            return Err(Status::BadArgument);
        }
        // Spec 1.3: the action, and for `Tunnel` (a capability) the outer addresses after it.
        let tunnel = match entry.ctl.hit_action() {
            None => return Err(Status::BadArgument),
            Some(NextHopAction::Tunnel) => {
                if identity::CAPS::TUNNEL.get(self.flash.caps) == 0 {
                    return Err(Status::BadArgument);
                }
                NextHopTunnel::read_from_prefix(rest).map(|(t, _)| t).unwrap_or_default()
            }
            Some(_) => NextHopTunnel::default(),
        };
        self.next_hops[n] = entry;
        self.tunnels[n] = tunnel;
        Ok(Outcome::default())
    }

    fn cmd_index_write(&mut self, cmd: &FlowCommand) -> CmdResult {
        let pos: IndexPos = cmd.slot_orig;
        if !self.table.pos_in_range(pos) {
            return Err(Status::SlotOutOfRange);
        }
        let slot = IndexSlot::read_from_prefix(&cmd.payload).map(|(s, _)| s).unwrap_or_default();
        if slot.word.reserved() != 0 {
            return Err(Status::BadArgument);
        }
        if slot.word.valid() {
            let index = slot.record.get() as usize;
            let rec = self.table.records.get(index).ok_or(Status::RecordOutOfRange)?;
            if !rec.ctl.valid() {
                return Err(Status::RecordNotLive);
            }
            if self.table.slot(pos).is_some_and(|s| s.word.valid()) {
                return Err(Status::SlotLive);
            }
            let key = rec.key(slot.word.reply());
            if !self.table.placement_allows(pos, &key) || self.table.placement(&key).sig != slot.word.sig() {
                return Err(Status::BadPlacement);
            }
            self.table.set_slot(pos, slot);
        } else {
            self.table.set_slot(pos, IndexSlot::default());
        }
        Ok(Outcome::default())
    }

    /// IndexMove (since 1.5): the word at `slot_orig` (which must point at `record`, fetched
    /// ahead with the command) to the empty `slot_reply`, which must be a place its tuple may
    /// be, and `slot_orig` cleared, both in this one step. A device whose image lacks
    /// `INDEX_MOVE` knows no such opcode.
    fn cmd_index_move(&mut self, cmd: &FlowCommand) -> CmdResult {
        if identity::CAPS::INDEX_MOVE.get(self.flash.caps) == 0 {
            return Err(Status::BadOpcode);
        }
        let (from, to) = (cmd.slot_orig, cmd.slot_reply);
        if !self.table.pos_in_range(from) || !self.table.pos_in_range(to) {
            return Err(Status::SlotOutOfRange);
        }
        let slot = self.table.slot(from).copied().unwrap_or_default();
        if !slot.word.valid() {
            return Err(Status::SlotNotLive);
        }
        if slot.record != cmd.record {
            return Err(Status::SlotMismatch);
        }
        if self.table.slot(to).is_some_and(|s| s.word.valid()) {
            return Err(Status::SlotLive);
        }
        let rec = self.table.records.get(slot.record.get() as usize).ok_or(Status::RecordOutOfRange)?;
        if !rec.ctl.valid() {
            return Err(Status::RecordNotLive);
        }
        if !self.table.placement_allows(to, &rec.key(slot.word.reply())) {
            return Err(Status::BadPlacement);
        }
        self.table.set_slot(to, slot);
        self.table.set_slot(from, IndexSlot::default());
        Ok(Outcome::default())
    }
}
