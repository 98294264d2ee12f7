//! The two mmap rings of the AF_PACKET port, in TPACKET_V3 layout, and the walk over them.
//!
//! - **Rx** is a ring of blocks. The kernel fills a block with frames back to back (each behind
//!   a `tpacket3_hdr`) and hands the whole block over (`TP_STATUS_USER` in its header) when it
//!   is full or when the retire timer fires ([`RX_RETIRE_MS`]); we copy its frames out and hand
//!   it back (`TP_STATUS_KERNEL`). One status check per block rather than per frame, and no
//!   system call at all while blocks are ready.
//! - **Tx** is a ring of fixed-size frames (TPACKET_V3 sends as V2 does: one frame per slot).
//!   We copy a frame into the next free slot and mark it `TP_STATUS_SEND_REQUEST`; one `send()`
//!   with no data then makes the kernel send every marked slot, and it marks each one free again
//!   as it goes. So a burst costs one system call however many frames it holds.
//!
//! Both rings live in one mapping of the socket (rx first); slot and block status words are
//! touched as atomics with acquire/release, frame bytes copied with volatile accesses
//! ([`super::mmap`]).

use std::sync::atomic::Ordering;

use super::RxBurst;
use super::mmap::{self, Mapping};

/// Bytes per rx block: a multiple of the page size, room for the largest frame (9018 bytes
/// at MTU 9000) and small enough to fill quickly under load.
pub const RX_BLOCK_SIZE: u32 = 1 << 15;
/// Rx blocks: 4 MiB in all, some milliseconds of a busy 10G link.
pub const RX_BLOCKS: u32 = 128;
/// Nominal rx frame size the V3 request wants (blocks hold frames of any size).
pub const RX_FRAME_SIZE: u32 = 2048;
/// How long the kernel keeps a block that is not full before handing it over, in ms: the
/// latency floor of an idle wire (TPACKET_V3's cost; 1 is the smallest it takes).
pub const RX_RETIRE_MS: u32 = 1;
/// Tx slots.
pub const TX_FRAMES: u32 = 512;

/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where a tx frame's data starts in its slot
/// and where the `sockaddr_ll` follows an rx frame's header.
pub const TX_DATA_OFFSET: usize = 48;
/// `TP_STATUS_VLAN_TPID_VALID`.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// Offsets in a block descriptor (`struct tpacket_block_desc` with `tpacket_hdr_v1`).
const BLOCK_STATUS: usize = 8;
/// Offsets in a `tpacket3_hdr`.
const TP_LEN: usize = 16;
const TP_STATUS: usize = 20;
/// `sll_pkttype` in the `sockaddr_ll` after an rx frame's header.
const SLL_PKTTYPE: usize = TX_DATA_OFFSET + 10;

/// The first fields of a block descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BlockHeader {
    version: u32,
    offset_to_priv: u32,
    block_status: u32,
    num_pkts: u32,
    offset_to_first_pkt: u32,
    blk_len: u32,
}

/// The rx and tx ring requests for an interface whose frames are at most `max_frame` bytes.
pub fn requests(max_frame: usize) -> (libc::tpacket_req3, libc::tpacket_req3) {
    let rx = libc::tpacket_req3 {
        tp_block_size: RX_BLOCK_SIZE,
        tp_block_nr: RX_BLOCKS,
        tp_frame_size: RX_FRAME_SIZE,
        tp_frame_nr: RX_BLOCKS * (RX_BLOCK_SIZE / RX_FRAME_SIZE),
        tp_retire_blk_tov: RX_RETIRE_MS,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    // A power of two from 2 KiB holding header and frame; blocks of 64 KiB or one frame.
    let frame = ((TX_DATA_OFFSET + max_frame).next_power_of_two().max(2048)) as u32;
    let block = frame.max(1 << 16);
    let per_block = block / frame;
    let tx = libc::tpacket_req3 {
        tp_block_size: block,
        tp_block_nr: TX_FRAMES.div_ceil(per_block),
        tp_frame_size: frame,
        tp_frame_nr: TX_FRAMES.div_ceil(per_block) * per_block,
        // The kernel refuses block options on a tx ring.
        tp_retire_blk_tov: 0,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    (rx, tx)
}

/// Bytes a ring request maps.
pub fn ring_bytes(req: &libc::tpacket_req3) -> usize {
    req.tp_block_size as usize * req.tp_block_nr as usize
}

/// What one rx walk found besides frames.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxCounts {
    /// Frames cut by the block size (only with GRO on: larger than any MTU).
    pub oversized: u64,
    /// Headers that pointed outside their block (never seen; the rest of the block is skipped).
    pub malformed: u64,
}

/// The walk over the rx blocks.
#[derive(Debug)]
pub struct RxRing {
    blocks: usize,
    block_size: usize,
    /// The block being read (ours while `left > 0` or `held`).
    block: usize,
    /// Frames of the current block not read yet.
    left: u32,
    /// Offset of the next frame in the current block.
    next: usize,
    /// Whether the current block is ours (handed over and not yet given back).
    held: bool,
    pub counts: RxCounts,
}

impl RxRing {
    /// The walk over `req`'s blocks, at the start of the mapping.
    pub fn new(req: &libc::tpacket_req3) -> Self {
        Self {
            blocks: req.tp_block_nr as usize,
            block_size: req.tp_block_size as usize,
            block: 0,
            left: 0,
            next: 0,
            held: false,
            counts: RxCounts::default(),
        }
    }

    /// Gives the current block back to the kernel and moves to the next.
    fn release(&mut self, map: &Mapping) {
        if let Some(p) = map.at(self.block * self.block_size + BLOCK_STATUS, 4) {
            // SAFETY: a 4-aligned status word inside the live mapping; the release store orders
            // our reads of the block before the kernel's next writes to it.
            unsafe { mmap::status(p) }.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.held = false;
        self.block = (self.block + 1) % self.blocks;
    }

    /// Takes the next block if the kernel handed it over.
    fn acquire(&mut self, map: &Mapping) -> bool {
        let base = self.block * self.block_size;
        let Some(p) = map.at(base + BLOCK_STATUS, 4) else { return false };
        // SAFETY: a 4-aligned status word inside the live mapping.
        let status = unsafe { mmap::status(p) }.load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return false;
        }
        let Some(h) = map.at(base, size_of::<BlockHeader>()) else { return false };
        // SAFETY: the block is ours (status read with acquire above), the header inside it.
        let header: BlockHeader = unsafe { mmap::read_header(h) };
        self.held = true;
        self.left = header.num_pkts;
        self.next = header.offset_to_first_pkt as usize;
        true
    }

    /// Appends up to `max` frames to `burst` (putting back the VLAN tag the kernel took off);
    /// returns how many.
    pub fn recv(&mut self, map: &Mapping, burst: &mut RxBurst, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            if self.left == 0 {
                if self.held {
                    self.release(map);
                }
                if !self.acquire(map) {
                    break;
                }
                continue;
            }
            self.left -= 1;
            let at = self.next;
            match self.frame(map, at, burst) {
                Ok((next_offset, taken)) => {
                    n += usize::from(taken);
                    self.next = at + next_offset;
                }
                Err(()) => {
                    self.counts.malformed += 1;
                    self.left = 0;
                }
            }
        }
        // A block read to its end goes back at once, not at the next call.
        if self.held && self.left == 0 {
            self.release(map);
        }
        n
    }

    /// Reads the frame whose header is at `at` in the current block: its `tp_next_offset`
    /// and whether it went into the burst.
    fn frame(&mut self, map: &Mapping, at: usize, burst: &mut RxBurst) -> Result<(usize, bool), ()> {
        let base = self.block * self.block_size;
        if at + TX_DATA_OFFSET + 12 > self.block_size {
            return Err(());
        }
        let h = map.at(base + at, size_of::<libc::tpacket3_hdr>()).ok_or(())?;
        // SAFETY: inside the block we hold (acquired), which the kernel does not write.
        let hdr: libc::tpacket3_hdr = unsafe { mmap::read_header(h) };
        let pkttype: u8 = map
            .at(base + at + SLL_PKTTYPE, 1)
            // SAFETY: as above.
            .map_or(0, |p| unsafe { mmap::read_header(p) });
        let (mac, len) = (usize::from(hdr.tp_mac), hdr.tp_snaplen as usize);
        if at + mac + len > self.block_size {
            return Err(());
        }
        let next = hdr.tp_next_offset as usize;
        if pkttype == libc::PACKET_OUTGOING {
            return Ok((next, false)); // Our own send, on a kernel without PACKET_IGNORE_OUTGOING.
        }
        if hdr.tp_snaplen < hdr.tp_len {
            if self.counts.oversized == 0 {
                tracing::warn!(len = hdr.tp_len, "dropping oversized frames: are offloads (GRO) off?");
            }
            self.counts.oversized += 1;
            return Ok((next, false));
        }
        let src = map.at(base + at + mac, len).ok_or(())?;
        let status = hdr.tp_status;
        let tci = hdr.hv1.tp_vlan_tci as u16;
        let tag = (status & libc::TP_STATUS_VLAN_VALID != 0 || tci != 0).then(|| {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                hdr.hv1.tp_vlan_tpid
            } else {
                libc::ETH_P_8021Q as u16
            };
            let ([t0, t1], [c0, c1]) = (tpid.to_be_bytes(), tci.to_be_bytes());
            [t0, t1, c0, c1]
        });
        match tag {
            Some(tag) if len >= 12 => burst.push_with(len + 4, None, |dst| {
                // SAFETY: `src..src + len` is inside the block we hold.
                unsafe {
                    mmap::copy_in(src, &mut dst[..12]);
                    mmap::copy_in(src.add(12), &mut dst[16..len + 4]);
                }
                dst[12..16].copy_from_slice(&tag);
                len + 4
            }),
            _ => burst.push_with(len, None, |dst| {
                // SAFETY: as above.
                unsafe { mmap::copy_in(src, dst) };
                len
            }),
        }
        Ok((next, true))
    }
}

/// The tx slots.
#[derive(Debug)]
pub struct TxRing {
    /// Where the tx ring starts in the mapping (after the rx ring).
    start: usize,
    frames: usize,
    frame_size: usize,
    /// The next slot to fill.
    head: usize,
    /// Slots marked for sending since the last kick, oldest first from `head - queued`.
    pub queued: usize,
}

impl TxRing {
    /// The slots of `req`, starting `start` bytes into the mapping.
    pub fn new(req: &libc::tpacket_req3, start: usize) -> Self {
        Self {
            start,
            frames: req.tp_frame_nr as usize,
            frame_size: req.tp_frame_size as usize,
            head: 0,
            queued: 0,
        }
    }

    /// The longest frame a slot holds.
    pub fn max_frame(&self) -> usize {
        self.frame_size - TX_DATA_OFFSET
    }

    fn slot(&self, i: usize) -> usize {
        self.start + i * self.frame_size
    }

    /// Copies `frame` into the next free slot and marks it for sending; false when every slot
    /// is still waiting to be sent (the frame is not taken).
    pub fn push(&mut self, map: &Mapping, frame: &[u8]) -> bool {
        let slot = self.slot(self.head);
        let (Some(status), Some(len), Some(data)) = (
            map.at(slot + TP_STATUS, 4),
            map.at(slot + TP_LEN, 4),
            map.at(slot + TX_DATA_OFFSET, frame.len()),
        ) else {
            return false;
        };
        // SAFETY: a 4-aligned status word inside the live mapping.
        let status = unsafe { mmap::status(status) };
        // Available, or refused by the kernel as malformed (then ours again).
        if status.load(Ordering::Acquire) & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0 {
            return false;
        }
        // SAFETY: the slot is ours (status checked with acquire): the kernel reads it only
        // after the release store below. `tp_next_offset` stays 0 (the kernel zeroed the ring,
        // and V3 sends refuse anything else).
        unsafe {
            mmap::copy_out(frame, data);
            mmap::copy_out(&(frame.len() as u32).to_ne_bytes(), len);
        }
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = (self.head + 1) % self.frames;
        self.queued += 1;
        true
    }

    /// Takes back the slots still marked for sending (after a kick failed for good: the frames
    /// are dropped, as a NIC drops its queue when the link goes).
    pub fn cancel(&mut self, map: &Mapping) {
        for k in 1..=self.queued.min(self.frames) {
            let i = (self.head + self.frames - k) % self.frames;
            if let Some(p) = map.at(self.slot(i) + TP_STATUS, 4) {
                // SAFETY: a 4-aligned status word inside the live mapping. The kernel touches
                // a marked slot only inside our own `send()`, which has returned.
                let s = unsafe { mmap::status(p) };
                let _ = s.compare_exchange(
                    libc::TP_STATUS_SEND_REQUEST,
                    libc::TP_STATUS_AVAILABLE,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        self.queued = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_what_the_kernel_accepts() {
        let (rx, tx) = requests(1518);
        assert_eq!(rx.tp_block_size % 4096, 0);
        assert_eq!(rx.tp_frame_nr, rx.tp_block_nr * (rx.tp_block_size / rx.tp_frame_size));
        assert_eq!(ring_bytes(&rx), 4 << 20);
        assert_eq!(tx.tp_frame_size, 2048);
        assert_eq!(tx.tp_frame_nr, TX_FRAMES);
        assert_eq!(tx.tp_frame_nr, tx.tp_block_nr * (tx.tp_block_size / tx.tp_frame_size));
        assert_eq!(tx.tp_retire_blk_tov, 0);
        let (_, jumbo) = requests(9018);
        assert_eq!(jumbo.tp_frame_size, 16384);
        assert_eq!(jumbo.tp_block_size % 4096, 0);
        assert!(jumbo.tp_frame_nr >= TX_FRAMES);
        assert_eq!(size_of::<libc::tpacket3_hdr>(), TX_DATA_OFFSET);
    }

    /// A block as the kernel would hand it over: `frames` (with a VLAN tag on the second), then
    /// the walk over it.
    #[test]
    fn a_handed_over_block_is_read_and_given_back() {
        let req = libc::tpacket_req3 { tp_block_nr: 2, ..requests(1518).0 };
        let map = Mapping::anonymous(ring_bytes(&req)).unwrap();
        let write = |off: usize, bytes: &[u8]| {
            // SAFETY: inside the private mapping this test owns.
            unsafe { mmap::copy_out(bytes, map.at(off, bytes.len()).unwrap()) }
        };
        let frames: [&[u8]; 3] = [&[1; 60], &[2; 64], &[3; 70]];
        let first = 48usize;
        let mut at = first;
        for (i, f) in frames.iter().enumerate() {
            let next = if i + 1 < frames.len() { 256 } else { 0 };
            let mut h = [0u8; 48];
            h[0..4].copy_from_slice(&(next as u32).to_ne_bytes());
            h[12..16].copy_from_slice(&(f.len() as u32).to_ne_bytes()); // snaplen
            h[16..20].copy_from_slice(&(f.len() as u32).to_ne_bytes()); // len
            if i == 1 {
                h[20..24].copy_from_slice(&libc::TP_STATUS_VLAN_VALID.to_ne_bytes());
                h[32..36].copy_from_slice(&0x207bu32.to_ne_bytes()); // hv1.tp_vlan_tci
            }
            h[24..26].copy_from_slice(&66u16.to_ne_bytes()); // tp_mac
            write(at, &h);
            write(at + 66, f);
            at += next;
        }
        let header = [0u32, 0, 0, 3, first as u32, 512];
        let bytes: Vec<u8> = header.iter().flat_map(|w| w.to_ne_bytes()).collect();
        write(0, &bytes);

        let mut ring = RxRing::new(&req);
        let mut burst = RxBurst::default();
        assert_eq!(ring.recv(&map, &mut burst, 8), 0, "the kernel still owns the block");
        // SAFETY: inside the mapping; the test plays the kernel.
        unsafe { mmap::status(map.at(BLOCK_STATUS, 4).unwrap()) }
            .store(libc::TP_STATUS_USER, Ordering::Release);
        assert_eq!(ring.recv(&map, &mut burst, 2), 2, "a burst stops at max");
        assert_eq!(ring.recv(&map, &mut burst, 8), 1);
        assert_eq!(burst.get(0).unwrap().data, frames[0]);
        let tagged = burst.get(1).unwrap().data;
        assert_eq!(tagged.len(), 68);
        assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x20, 0x7b], "the tag is back in place");
        assert_eq!(burst.get(2).unwrap().data, frames[2]);
        // SAFETY: as above.
        let status = unsafe { mmap::status(map.at(BLOCK_STATUS, 4).unwrap()) }.load(Ordering::Acquire);
        assert_eq!(status, libc::TP_STATUS_KERNEL, "read to its end, the block went back");
        assert_eq!(ring.counts, RxCounts::default());
    }

    #[test]
    fn tx_slots_fill_mark_and_run_out() {
        let (_, req) = requests(1518);
        let map = Mapping::anonymous(ring_bytes(&req)).unwrap();
        let mut tx = TxRing::new(&req, 0);
        assert_eq!(tx.max_frame(), 2000);
        let frame: &[u8] = &[7; 100];
        for _ in 0..TX_FRAMES {
            assert!(tx.push(&map, frame));
        }
        assert!(!tx.push(&map, frame), "every slot waits for the kernel");
        assert_eq!(tx.queued, TX_FRAMES as usize);
        // SAFETY: inside the mapping.
        let len: u32 = unsafe { mmap::read_header(map.at(TP_LEN, 4).unwrap()) };
        assert_eq!(len, 100);
        tx.cancel(&map);
        assert_eq!(tx.queued, 0);
        assert!(tx.push(&map, frame), "cancelled slots are free again");
    }
}
