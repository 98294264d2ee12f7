//! Typed, batch-oriented rings over DMA memory.
//!
//! A [`Producer`] fills entries of a host-produced ring (commands, injects) and rings the
//! doorbell once per batch ([`Producer::flush`]); a [`Consumer`] takes entries of a
//! device-produced ring (completions, exceptions, events) while their phase bit says they are
//! new, and hands the consumer index back with one doorbell per batch. Entries are `rtl_spec`
//! formats, read and written through [`DmaRegion`]'s volatile accessors.

use crate::dma::DmaRegion;
use crate::transport::Transport;
use rtl_spec::formats::{Completion, Event, ExceptionDesc, FlowCommand, InjectDesc};
use rtl_spec::ring;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A ring entry format and where its phase bit is.
pub trait RingEntry: FromBytes + IntoBytes + Immutable + Copy {
    /// The entry's phase bit.
    fn phase(&self) -> bool;
    /// Sets the phase bit (host-produced entries).
    fn set_phase(&mut self, phase: bool);
}

macro_rules! ring_entry {
    ($($t:ty),*) => {$(
        impl RingEntry for $t {
            fn phase(&self) -> bool {
                self.flags.phase()
            }
            fn set_phase(&mut self, phase: bool) {
                self.flags.set_phase(phase);
            }
        }
    )*};
}
ring_entry!(FlowCommand, InjectDesc, Completion, ExceptionDesc, Event);

/// Where a ring lives: its memory, its size and its doorbell.
#[derive(Clone, Debug)]
pub struct RingMem {
    /// The entries.
    pub region: DmaRegion,
    /// log2 of the number of entries.
    pub log2: u32,
    /// BAR0 offset of the doorbell.
    pub doorbell: u32,
}

impl RingMem {
    /// Number of entries.
    pub fn capacity(&self) -> u32 {
        1 << self.log2
    }
    fn offset<T>(&self, index: u32) -> usize {
        ring::slot(index, self.log2) as usize * size_of::<T>()
    }
}

/// The host side of a host-produced ring.
#[derive(Debug)]
pub struct Producer<T> {
    mem: RingMem,
    prod: u32,
    published: u32,
    _entry: std::marker::PhantomData<T>,
}

impl<T: RingEntry> Producer<T> {
    /// A producer at index 0 (a ring just enabled).
    pub fn new(mem: RingMem) -> Self {
        Producer { mem, prod: 0, published: 0, _entry: std::marker::PhantomData }
    }

    /// The next index to be written.
    pub fn prod(&self) -> u32 {
        self.prod
    }

    /// Entries that fit, given the device's consumer index `cons`.
    pub fn free(&self, cons: u32) -> u32 {
        ring::free(self.prod, cons, self.mem.log2)
    }

    /// Writes `entry` (its phase set here) at the producer index; not visible to the device until
    /// [`Self::flush`]. The caller checks room with [`Self::free`]. Returns the entry's index.
    pub fn push(&mut self, mut entry: T) -> u32 {
        let index = self.prod;
        entry.set_phase(ring::phase_for(index, self.mem.log2));
        self.mem.region.write_obj(self.mem.offset::<T>(index), &entry);
        self.prod = index.wrapping_add(1);
        index
    }

    /// Publishes everything pushed since the last flush with one doorbell write. Returns how
    /// many entries were published.
    pub fn flush(&mut self, t: &mut dyn Transport) -> u32 {
        let n = self.prod.wrapping_sub(self.published);
        if n > 0 {
            t.write32(self.mem.doorbell, self.prod);
            self.published = self.prod;
        }
        n
    }
}

/// The host side of a device-produced ring.
#[derive(Debug)]
pub struct Consumer<T> {
    mem: RingMem,
    cons: u32,
    _entry: std::marker::PhantomData<T>,
}

impl<T: RingEntry> Consumer<T> {
    /// A consumer at index 0 (a ring just enabled).
    pub fn new(mem: RingMem) -> Self {
        Consumer { mem, cons: 0, _entry: std::marker::PhantomData }
    }

    /// The ring's memory.
    pub fn mem(&self) -> &RingMem {
        &self.mem
    }

    /// Takes up to `max` new entries into `out` as `(index, entry)`, then returns the consumer
    /// index to the device with one doorbell. Returns how many were taken.
    pub fn poll(&mut self, t: &mut dyn Transport, out: &mut Vec<(u32, T)>, max: usize) -> usize {
        let mut taken = 0;
        while taken < max {
            // Read into its place in `out`, not into a local then moved there: the move copied
            // the entry in pieces that straddled the read's 16-byte stores, and a load the CPU
            // cannot forward from the stores before it waits for them to reach the cache.
            out.push((self.cons, T::new_zeroed()));
            let Some((_, entry)) = out.last_mut() else { break };
            self.mem.region.read(self.mem.offset::<T>(self.cons), entry.as_mut_bytes());
            if entry.phase() != ring::phase_for(self.cons, self.mem.log2) {
                out.pop();
                break;
            }
            self.cons = self.cons.wrapping_add(1);
            taken += 1;
        }
        if taken > 0 {
            t.write32(self.mem.doorbell, self.cons);
        }
        taken
    }

    /// Whether an entry is waiting (without taking it).
    pub fn ready(&self) -> bool {
        let entry: T = self.mem.region.read_obj(self.mem.offset::<T>(self.cons));
        entry.phase() == ring::phase_for(self.cons, self.mem.log2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::DmaBacking;
    use rtl_spec::formats::CompletionFlags;

    /// A transport that records doorbell writes and nothing else.
    #[derive(Default)]
    struct Doorbells(Vec<(u32, u32)>);

    impl Transport for Doorbells {
        fn describe(&self) -> String {
            "doorbells".into()
        }
        fn read32(&mut self, _: u32) -> u32 {
            0
        }
        fn write32(&mut self, offset: u32, value: u32) {
            self.0.push((offset, value));
        }
        fn read64(&mut self, _: u32) -> u64 {
            0
        }
        fn write64(&mut self, _: u32, _: u64) {}
        fn alloc_dma(&mut self, _: usize) -> Result<DmaRegion, crate::DriverError> {
            unreachable!()
        }
        fn free_dma(&mut self, _: &DmaRegion) -> Result<(), crate::DriverError> {
            Ok(())
        }
        fn interrupt(
            &mut self,
            _: u16,
        ) -> Result<Option<vmm_sys_util::eventfd::EventFd>, crate::DriverError> {
            Ok(None)
        }
        fn reset(&mut self) -> Result<(), crate::DriverError> {
            Ok(())
        }
    }

    fn mem(log2: u32, entry: usize) -> RingMem {
        RingMem {
            region: DmaRegion::new(DmaBacking::new(entry << log2).unwrap(), 0),
            log2,
            doorbell: 0x1_0000,
        }
    }

    #[test]
    fn producer_sets_phases_and_rings_once_per_batch() {
        let mut t = Doorbells::default();
        let m = mem(1, 256);
        let mut p = Producer::<FlowCommand>::new(m.clone());
        assert_eq!(p.free(0), 2);
        p.push(FlowCommand::default());
        p.push(FlowCommand::default());
        assert_eq!(p.free(0), 0);
        assert_eq!(p.flush(&mut t), 2);
        assert_eq!(p.flush(&mut t), 0, "nothing new: no doorbell");
        assert_eq!(t.0, vec![(0x1_0000, 2)]);
        let first: FlowCommand = m.region.read_obj(0);
        assert!(first.flags.phase(), "lap 0 carries phase 1");
        p.push(FlowCommand::default());
        let third: FlowCommand = m.region.read_obj(0);
        assert!(!third.flags.phase(), "lap 1 carries phase 0");
    }

    #[test]
    fn consumer_takes_only_entries_of_its_lap() {
        let mut t = Doorbells::default();
        let m = mem(1, 64);
        let mut c = Consumer::<Completion>::new(m.clone());
        let mut out = Vec::new();
        assert_eq!(c.poll(&mut t, &mut out, 8), 0, "zeroed memory is not an entry");
        assert!(t.0.is_empty(), "no doorbell when nothing was taken");
        let new =
            |phase| Completion { flags: CompletionFlags::new().with_phase(phase), ..Completion::default() };
        m.region.write_obj(0, &new(true));
        m.region.write_obj(64, &new(true));
        assert!(c.ready());
        assert_eq!(c.poll(&mut t, &mut out, 1), 1, "max respected");
        assert_eq!(c.poll(&mut t, &mut out, 8), 1);
        assert_eq!(c.poll(&mut t, &mut out, 8), 0, "slot 0 still holds lap 0's phase");
        m.region.write_obj(0, &new(false));
        assert_eq!(c.poll(&mut t, &mut out, 8), 1);
        assert_eq!(out.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(t.0, vec![(0x1_0000, 1), (0x1_0000, 2), (0x1_0000, 3)]);
    }
}
