//! The ager: sweeps the records at the configured pace and reports (or, with `auto_delete`,
//! removes) the ones idle longer than their timeout.

use super::{Device, ticks_at};
use rtl_spec::codes::{EventKind, FlowCause};
use rtl_spec::formats::{Event, EventFlags};
use zerocopy::little_endian::{U32, U64};

impl Device {
    /// Sweeps as many records as the time since the last call allows (all of them once per
    /// `SCAN_PERIOD_MS`).
    pub(super) fn ager_advance(&mut self, now_ns: u64) {
        if !self.regs.ager_enable {
            self.ager.last_ns = Some(now_ns);
            return;
        }
        let Some(last) = self.ager.last_ns else {
            self.ager.last_ns = Some(now_ns);
            return;
        };
        let period_ns = u128::from(self.regs.scan_period_ms.max(1)) * 1_000_000;
        let records = self.table.records.len() as u128;
        let elapsed = u128::from(now_ns.saturating_sub(last));
        let visit = (elapsed * records / period_ns).min(records) as u32;
        if visit == 0 {
            return;
        }
        self.ager.last_ns = Some(now_ns);
        self.age_records(visit);
    }

    /// Sweeps every record once, now: the step-mode equivalent of one scan period.
    pub fn run_ager_sweep(&mut self) {
        let records = self.table.records.len() as u32;
        self.age_records(records);
        self.ager.last_ns = Some(self.clock.now_ns());
    }

    fn age_records(&mut self, count: u32) {
        let records = self.table.records.len() as u32;
        let now_ticks = ticks_at(self.clock.now_ns(), self.regs.tick_us);
        let tick_us = u64::from(self.regs.tick_us.max(1));
        for _ in 0..count {
            let index = self.ager.cursor;
            self.ager.cursor += 1;
            if self.ager.cursor >= records {
                self.ager.cursor = 0;
                self.ager.scans += 1;
            }
            let rec = self.table.records[index as usize];
            if !rec.ctl.valid() || rec.idle_timeout.get() == 0 || self.table.idle_reported.get(index as usize)
            {
                continue;
            }
            let idle_ticks = u64::from(now_ticks.wrapping_sub(rec.last_seen.get()));
            if idle_ticks * tick_us < u64::from(rec.idle_timeout.get()) * 1_000_000 {
                continue;
            }
            let evict = rec.ctl.auto_delete();
            let cause = if evict { FlowCause::Evicted } else { FlowCause::Idle };
            let event = self.flow_event(index, cause, !evict);
            if evict {
                self.bank.release(super::bank::set_of(&rec));
                self.table.remove_record(index);
                self.ager.evicted += 1;
                self.table_counters.deletes += 1;
            } else {
                self.table.idle_reported.set(index as usize);
                self.ager.aged += 1;
            }
            self.post_event(event);
        }
    }

    /// A flow-info event carrying record `index`'s final counters.
    pub(super) fn flow_event(&self, index: u32, cause: FlowCause, live: bool) -> Event {
        let rec = &self.table.records[index as usize];
        let now_ns = self.clock.now_ns();
        Event {
            kind: EventKind::FlowInfo.into(),
            cause: cause.into(),
            flags: EventFlags::new().with_live(live),
            record: U32::new(index),
            timestamp: U64::new(now_ns),
            cookie: rec.cookie,
            idle_ms: U32::new(self.idle_ms(rec.last_seen.get())),
            packets_orig: rec.packets_orig,
            packets_reply: rec.packets_reply,
            bytes_orig: rec.bytes_orig,
            bytes_reply: rec.bytes_reply,
            tcp_flags_orig: rec.tcp_flags_orig,
            tcp_flags_reply: rec.tcp_flags_reply,
            ..Event::default()
        }
    }

    /// Milliseconds since `last_seen` (in ticks), saturating.
    pub(super) fn idle_ms(&self, last_seen: u32) -> u32 {
        let idle_ticks = u64::from(self.now_ticks().wrapping_sub(last_seen));
        u32::try_from(idle_ticks * u64::from(self.regs.tick_us.max(1)) / 1000).unwrap_or(u32::MAX)
    }
}
