//! The receive pipeline: frames are taken in bursts of up to [`LOOKUP_BATCH`], the shape the
//! hardware has (a lookup keeps several memory reads in flight; see rtl/): every frame is
//! parsed and its tuple hashed once and its first candidate bucket prefetched; then the record
//! its matching slot names is prefetched (or, where the first bucket has none, the second
//! bucket, then its record); then, in arrival order, each frame is compared (against that
//! candidate record first; the full lookup of both buckets and the stash only when it does not
//! hold the key), rewritten and sent, or punted, or dropped. The stages overlap as a software
//! pipeline, each a fixed number of frames behind the one before, so that every prefetched line
//! has the same lead however long the memory takes (measured on a VM with 176 ns loads: 1.7x
//! the hits per second at 1M flows of running each stage over the whole burst before the next).
//! Only the last stage changes state, and it runs frame by frame in order, so a burst gives
//! exactly what the same frames one at a time give (a property test holds it to that; the
//! fixture corpus goes through this path one frame at a time, and the benchmarks in bursts).
//! The time is read once per burst: every frame of a burst arrives "now".
//!
//! A burst allocates nothing: its stages live in fixed arrays the device keeps between bursts.

use super::Device;
use crate::packet::{Parsed, Verdict, classify_into};
use rtl_spec::codes::{DropReason, PuntReason};
use rtl_spec::formats::LookupKey;
use rtl_spec::hash::Placement;
use zerocopy::IntoBytes;

/// Frames whose lookups are in flight together.
pub const LOOKUP_BATCH: usize = 32;

/// Frames between one stage of the pipeline and the next (see `Device::receive_chunk`).
const STAGE_DISTANCE: usize = 6;

/// What stage one decided for a frame.
#[derive(Clone, Copy)]
enum Stage {
    /// Dropped (and counted) on arrival.
    Dropped,
    /// For the host, by the parser's rule.
    Punt(PuntReason),
    /// For the flow table.
    Lookup,
}

/// When a burst arrived (read once per burst): its time and the same in the ager's ticks, so a
/// hit stamps its record without two divisions per frame.
#[derive(Clone, Copy)]
pub(super) struct Arrival {
    /// Device time, nanoseconds.
    pub(super) ns: u64,
    /// The same in ager ticks (`TICK_US`), as `last_seen` holds it.
    pub(super) ticks: u32,
}

/// A burst in flight, kept as arrays (one entry per frame) so that a stage touches only what it
/// needs: the parse, the key and its placement (the hash, computed once), and the verdict.
pub(super) struct Burst {
    stage: [Stage; LOOKUP_BATCH],
    parsed: [Parsed; LOOKUP_BATCH],
    key: [LookupKey; LOOKUP_BATCH],
    place: [Placement; LOOKUP_BATCH],
    /// The slot stages two and two-b found for the frame's signature: the record to compare.
    /// After stage two, `None` on a lookup means the first bucket had none (stage two-b looks
    /// in the second).
    candidate: [Option<(u32, bool)>; LOOKUP_BATCH],
}

/// Asks the CPU to bring the cache line holding `value` in ahead of its use.
#[inline]
pub(super) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetching is a hint and never faults, whatever the address; `value` is a
        // live reference besides. SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

impl Device {
    /// Frames in from the wire, each with its port, processed in bursts of `LOOKUP_BATCH`;
    /// what they send is on the wire on return (one flush per port per call).
    pub fn receive_burst(&mut self, frames: &[(u8, &[u8])]) {
        self.receive_frames(frames);
        self.flush_ports();
    }

    /// [`Self::receive_burst`] without the flush: what is sent stays queued on the egress
    /// ports until the caller flushes ([`Device::poll_ports`] does, once per port's burst).
    pub(super) fn receive_frames(&mut self, frames: &[(u8, &[u8])]) {
        for burst in frames.chunks(LOOKUP_BATCH) {
            self.receive_chunk(burst);
        }
    }

    fn receive_chunk(&mut self, frames: &[(u8, &[u8])]) {
        debug_assert!(frames.len() <= LOOKUP_BATCH);
        let n = frames.len();
        // Every entry below `n` is written in stage one before it is read (`key` and `place`
        // only for lookups, and only lookups read them), so what a previous burst left is never
        // seen.
        let mut b = self.burst.take().unwrap_or_else(|| {
            let no_place = Placement { bucket_a: 0, bucket_b: 0, sig: 0 };
            Box::new(Burst {
                stage: [Stage::Dropped; LOOKUP_BATCH],
                parsed: [Parsed::default(); LOOKUP_BATCH],
                key: [LookupKey::default(); LOOKUP_BATCH],
                place: [no_place; LOOKUP_BATCH],
                candidate: [None; LOOKUP_BATCH],
            })
        });
        // The stages run as a software pipeline over the burst, each frame [`STAGE_DISTANCE`]
        // steps behind the previous stage's: step `t` runs stage one of frame `t`, stage two of
        // frame `t - D`, stage two-b of `t - 2D` and stage three of `t - 3D`. A line prefetched
        // for a frame is used D steps (a few hundred nanoseconds of the other frames' work)
        // later, which covers a memory access even on a virtual machine's nested page walk;
        // stages run strictly one after another covered it only for the later frames.
        //
        // A burst shorter than the distance runs at its own length as the distance: a frame's
        // stages still run in order and stage three in arrival order, but a burst of one takes
        // four steps, not the nineteen (mostly empty) of the full distance. Small bursts are
        // the common case of a lightly loaded port and of the first-packet path.
        let now_ns = self.clock.now_ns();
        let now = Arrival { ns: now_ns, ticks: super::ticks_at(now_ns, self.regs.tick_us) };
        let distance = STAGE_DISTANCE.min(n.max(1));
        for t in 0..n + 3 * distance {
            if t < n {
                self.stage_one(&mut b, t, frames[t]);
            }
            if let Some(i) = t.checked_sub(distance).filter(|&i| i < n) {
                self.stage_two(&mut b, i);
            }
            if let Some(i) = t.checked_sub(2 * distance).filter(|&i| i < n) {
                self.stage_two_b(&mut b, i);
            }
            if let Some(i) = t.checked_sub(3 * distance).filter(|&i| i < n) {
                self.stage_three(&b, i, frames[i], now);
            }
        }
        self.burst = Some(b);
    }

    /// Stage one: admit and parse; hash each lookup once and prefetch its first bucket (the host
    /// places an entry in its first bucket whenever there is room, so most hits end there, and
    /// one line is half the memory traffic of two).
    #[inline]
    fn stage_one(&mut self, b: &mut Burst, i: usize, (port, frame): (u8, &[u8])) {
        // Parsed into a local the compiler can keep in registers, and the key built from that,
        // not read back from the burst's array just written (a store-forwarding stall a frame).
        let mut parsed = Parsed::default();
        let stage = self.admit(port, frame, &mut parsed);
        if let Stage::Lookup = stage {
            let key = LookupKey::new(parsed.tuple, parsed.proto, parsed.ipv6);
            let place = self.table.placement(&key);
            if let Some(bucket) = self.table.buckets.get(place.bucket_a as usize) {
                prefetch(bucket);
            }
            b.key[i] = key;
            b.place[i] = place;
        }
        b.stage[i] = stage;
        b.parsed[i] = parsed;
    }

    /// Stage two: the record named by the first bucket's matching slot, prefetched; where the
    /// first bucket has none, the second bucket is prefetched instead, for stage two-b.
    #[inline]
    fn stage_two(&self, b: &mut Burst, i: usize) {
        if let Stage::Lookup = b.stage[i] {
            let place = &b.place[i];
            b.candidate[i] = self.table.candidate_in(place.bucket_a, place.sig);
            match b.candidate[i] {
                Some((record, _)) => self.prefetch_record(record),
                None => {
                    if let Some(bucket) = self.table.buckets.get(place.bucket_b as usize) {
                        prefetch(bucket);
                    }
                }
            }
        }
    }

    /// Stage two-b: the same in the second bucket, for the frames that need it.
    #[inline]
    fn stage_two_b(&self, b: &mut Burst, i: usize) {
        if let (Stage::Lookup, None) = (b.stage[i], b.candidate[i]) {
            let place = &b.place[i];
            b.candidate[i] = self.table.candidate_in(place.bucket_b, place.sig);
            if let Some((record, _)) = b.candidate[i] {
                self.prefetch_record(record);
            }
        }
    }

    /// Stage three, in arrival order: compare, then hit, punt or drop.
    #[inline]
    fn stage_three(&mut self, b: &Burst, i: usize, (port, frame): (u8, &[u8]), now: Arrival) {
        let parsed = &b.parsed[i];
        match b.stage[i] {
            Stage::Dropped => {}
            Stage::Punt(reason) => self.punt(reason, parsed, frame, port, None, now.ns),
            Stage::Lookup => match b.candidate[i].filter(|&c| self.table.candidate_holds(c, &b.key[i])) {
                // The usual hit: the candidate stage two found (and prefetched) holds the key.
                Some(hit) => {
                    self.counters.hits += 1;
                    self.hit(hit.0, hit.1, parsed, frame, port, now);
                }
                // A miss, or a signature shared with another key: the whole lookup decides.
                None => self.lookup_slow(b, i, (port, frame), now),
            },
        }
    }

    /// Stage three for a frame whose candidate did not hold its key: the full lookup (every slot
    /// of both buckets, then the stash).
    fn lookup_slow(&mut self, b: &Burst, i: usize, (port, frame): (u8, &[u8]), now: Arrival) {
        let parsed = &b.parsed[i];
        match self.table.lookup_at(&b.key[i], &b.place[i]) {
            None => {
                self.counters.misses += 1;
                self.punt(PuntReason::Miss, parsed, frame, port, None, now.ns);
            }
            Some((record, reply)) => {
                self.counters.hits += 1;
                self.hit(record, reply, parsed, frame, port, now);
            }
        }
    }

    /// Both lines of record `record`: the key and rewrite, then the counters.
    #[inline]
    fn prefetch_record(&self, record: u32) {
        if let Some(record) = self.table.records.get(record as usize) {
            prefetch(record);
            prefetch(&record.as_bytes()[64]);
        }
    }

    /// Stage one for one frame: the receive counters, the port and device checks, the parser
    /// (which writes what it learns to `parsed`).
    #[inline]
    fn admit(&mut self, port: u8, frame: &[u8], parsed: &mut Parsed) -> Stage {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += frame.len() as u64;
        let Some(p) = self.ports.get_mut(port as usize) else {
            self.count_drop(DropReason::PortDown);
            return Stage::Dropped;
        };
        p.counters.rx_packets += 1;
        p.counters.rx_bytes += frame.len() as u64;
        if !p.enable {
            p.counters.drops += 1;
            self.count_drop(DropReason::PortDown);
            return Stage::Dropped;
        }
        if !self.regs.enable {
            self.count_drop(DropReason::Disabled);
            return Stage::Dropped;
        }
        match classify_into(frame, parsed) {
            Verdict::Drop(reason) => {
                self.count_drop(reason);
                Stage::Dropped
            }
            Verdict::Punt(reason) => Stage::Punt(reason),
            Verdict::Lookup => Stage::Lookup,
        }
    }
}
