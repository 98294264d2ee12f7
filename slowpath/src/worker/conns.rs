//! A worker's connection store: compact records in a slab, found by either tuple through one
//! open-addressing index, with the tuples' hashes computed once and carried.
//!
//! **Records.** A [`Conn`] holds its four endpoints as raw 16-byte addresses and ports (not
//! `SocketAddr`s, which are 32 bytes each), its counters, its state and timer, and a 32-bit
//! reference to the server's and service's counters instead of two `Arc`s. Records live in a
//! slab of fixed pages of [`PAGE`] records (growing by a page, never by doubling and copying a
//! whole table), indexed by a slot number; a slot's generation grows each time it is reused, so a
//! stale `(slot, generation)` (an install result or an NIC answer for a connection that ended)
//! never reaches the connection that took the slot next. No connection allocates on the heap.
//!
//! **Index.** Both tuples of every connection (client → VIP, server → LIP) are in one
//! linear-probing table of 8-byte cells: the tuple's hash (`KeyHash::a`, the NIC's first
//! bucket hash with the table's seed) and the slot with the direction in its low bit. A lookup
//! compares the hash first and the record's tuple only on a hash match. Deletion shifts the
//! following cells back (no tombstones), so lookups stay short however many connections come
//! and go.
//!
//! **One hash per connection.** On the first packet the worker hashes both tuples with the NIC
//! table's seeds ([`rtl_spec::hash::Seeds`]); the record keeps both [`KeyHash`]es, the index uses
//! them, the install hands them to flow-offload's shadow index (which places with them), and the
//! removal finds the index cells with them. Later packets of the connection hash their tuple once
//! to look it up.

use crate::addr::{FastMap, from_bytes, to_bytes};
use crate::conn::{Dir, Endpoints, Offload, State};
use crate::service::{BackendStats, Forward, Proto, ServiceKey, ServiceStats};
use flow_offload::{FlowCounters, FlowHashes};
use rtl_spec::formats::LookupKey;
use rtl_spec::hash::{KeyHash, Seeds};
use std::net::SocketAddr;
use std::sync::Arc;

/// A connection.
#[derive(Debug)]
pub struct Conn {
    /// Client, VIP, LIP, real server (IPv4 in the first four bytes).
    addrs: [[u8; 16]; 4],
    /// Their ports, in the same order.
    ports: [u16; 4],
    /// The hashes of the original (client → VIP) and reply (server → LIP) tuples.
    hashes: FlowHashes,
    /// Generation of the slot (increases each time the slot is reused).
    pub generation: u32,
    /// When it was created, ns.
    pub created_ns: u64,
    /// When a packet of it was last seen by the host, ns.
    pub last_ns: u64,
    /// The deadline of its armed timer.
    pub(super) deadline_ns: u64,
    /// Packets forwarded by the host path (original, reply).
    pub packets: [u64; 2],
    /// Bytes (IP length) forwarded by the host path.
    pub bytes: [u64; 2],
    /// The NIC's packet counters at the last query or event.
    nic_packets: [u32; 2],
    /// The NIC's byte counters at the last query or event.
    nic_bytes: [u64; 2],
    /// The generation of its armed timer.
    pub(super) timer: u32,
    /// Its entry in the store's counter references.
    stats: u32,
    /// Where it is forwarded.
    pub offload: Offload,
    /// Protocol state.
    pub state: State,
    /// TCP or UDP.
    pub proto: Proto,
    /// How it is forwarded (its service's mode when it was created).
    pub forward: Forward,
    v6: bool,
    /// A query for the NIC's counters is on the way.
    pub(super) querying: bool,
    /// Its NIC record is (to be) written server first (PROXY protocol): the record's counters
    /// count the other way round.
    pub server_first: bool,
}

const CLIENT: usize = 0;
const VIP: usize = 1;
const LIP: usize = 2;
const RS: usize = 3;

impl Conn {
    fn endpoint(&self, i: usize) -> SocketAddr {
        SocketAddr::new(from_bytes(&self.addrs[i], self.v6), self.ports[i])
    }

    /// The four endpoints.
    pub fn ep(&self) -> Endpoints {
        Endpoints {
            client: self.endpoint(CLIENT),
            vip: self.endpoint(VIP),
            lip: self.endpoint(LIP),
            rs: self.endpoint(RS),
        }
    }

    /// The real server.
    pub fn rs(&self) -> SocketAddr {
        self.endpoint(RS)
    }

    /// The service it belongs to.
    pub fn service(&self) -> ServiceKey {
        ServiceKey { vip: self.endpoint(VIP), proto: self.proto }
    }

    /// The tuple hashes computed on its first packet.
    pub fn hashes(&self) -> FlowHashes {
        self.hashes
    }

    /// Takes the NIC's counters of its flow.
    pub fn set_nic(&mut self, k: &FlowCounters) {
        let k = if self.server_first { crate::proxy_protocol::swap_counters(*k) } else { *k };
        self.nic_packets = k.packets;
        self.nic_bytes = k.bytes;
    }

    /// Packets in both directions, host path and NIC.
    pub fn total_packets(&self) -> [u64; 2] {
        [self.packets[0] + u64::from(self.nic_packets[0]), self.packets[1] + u64::from(self.nic_packets[1])]
    }

    /// Bytes in both directions, host path and NIC.
    pub fn total_bytes(&self) -> [u64; 2] {
        [self.bytes[0] + self.nic_bytes[0], self.bytes[1] + self.nic_bytes[1]]
    }

    /// Whether its tuple in direction `dir` is `key`.
    fn holds(&self, dir: Dir, key: &LookupKey) -> bool {
        let (s, d) = if dir == Dir::Orig { (CLIENT, VIP) } else { (RS, LIP) };
        key.proto == self.proto.number()
            && key.family == if self.v6 { 6 } else { 4 }
            && key.tuple.src_addr == self.addrs[s]
            && key.tuple.dst_addr == self.addrs[d]
            && key.tuple.src_port.get() == self.ports[s]
            && key.tuple.dst_port.get() == self.ports[d]
    }
}

/// The lookup key of a packet's tuple, as the NIC forms it.
pub fn lookup_key(proto: u8, src: SocketAddr, dst: SocketAddr) -> LookupKey {
    LookupKey::new(crate::addr::tuple(src, dst), proto, src.is_ipv6())
}

/// A cell of the index: a tuple's hash and `slot << 1 | reply`; empty when `at` is `EMPTY`.
#[derive(Clone, Copy, Debug)]
struct Cell {
    tag: u32,
    at: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE_CELL: Cell = Cell { tag: 0, at: EMPTY };

/// Both tuples of every connection, by hash (linear probing, backward-shift deletion).
#[derive(Debug)]
struct TupleIndex {
    cells: Vec<Cell>,
    len: usize,
}

impl TupleIndex {
    fn new() -> Self {
        TupleIndex { cells: vec![FREE_CELL; 64], len: 0 }
    }

    fn mask(&self) -> usize {
        self.cells.len() - 1
    }

    /// The first cell of hash `tag` for which `is` says yes.
    fn find(&self, tag: u32, is: impl Fn(u32, Dir) -> bool) -> Option<(u32, Dir)> {
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            let c = self.cells[i];
            if c.at == EMPTY {
                return None;
            }
            if c.tag == tag {
                let (slot, dir) = (c.at >> 1, if c.at & 1 == 0 { Dir::Orig } else { Dir::Reply });
                if is(slot, dir) {
                    return Some((slot, dir));
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, tag: u32, at: u32) {
        // At most 7/8 full, so every probe ends at an empty cell.
        if (self.len + 1) * 8 > self.cells.len() * 7 {
            self.grow();
        }
        self.put(Cell { tag, at });
        self.len += 1;
    }

    fn put(&mut self, cell: Cell) {
        let mask = self.mask();
        let mut i = cell.tag as usize & mask;
        while self.cells[i].at != EMPTY {
            i = (i + 1) & mask;
        }
        self.cells[i] = cell;
    }

    fn grow(&mut self) {
        let doubled = vec![FREE_CELL; self.cells.len() * 2];
        let old = std::mem::replace(&mut self.cells, doubled);
        for c in old.into_iter().filter(|c| c.at != EMPTY) {
            self.put(c);
        }
    }

    /// Removes the cell `(tag, at)`; the cells after it that may move back do.
    fn remove(&mut self, tag: u32, at: u32) -> bool {
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            let c = self.cells[i];
            if c.at == EMPTY {
                return false;
            }
            if c.tag == tag && c.at == at {
                break;
            }
            i = (i + 1) & mask;
        }
        let mut j = (i + 1) & mask;
        while self.cells[j].at != EMPTY {
            let home = self.cells[j].tag as usize & mask;
            // The cell at j may fill the hole at i when i lies on its probe path [home, j).
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(i) & mask {
                self.cells[i] = self.cells[j];
                i = j;
            }
            j = (j + 1) & mask;
        }
        self.cells[i] = FREE_CELL;
        self.len -= 1;
        true
    }

    fn bytes(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>()
    }
}

/// A server's and its service's counters, and how many connections point at them.
type StatsRef = (Arc<BackendStats>, Arc<ServiceStats>, u32);

/// The server's and service's counters the connections point at, held once per pair with a
/// count of the connections that use them: a connection keeps 4 bytes, not two `Arc`s, and the
/// counters outlive a configuration reload for as long as one of its connections does.
#[derive(Debug, Default)]
struct StatsRefs {
    entries: Vec<Option<StatsRef>>,
    by_ptr: FastMap<(usize, usize), u32>,
    free: Vec<u32>,
}

impl StatsRefs {
    fn acquire(&mut self, bs: &Arc<BackendStats>, ss: &Arc<ServiceStats>) -> u32 {
        let key = (Arc::as_ptr(bs) as usize, Arc::as_ptr(ss) as usize);
        if let Some(&id) = self.by_ptr.get(&key) {
            if let Some(Some(e)) = self.entries.get_mut(id as usize) {
                e.2 += 1;
                return id;
            }
        }
        let entry = Some((bs.clone(), ss.clone(), 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.by_ptr.insert(key, id);
        id
    }

    fn release(&mut self, id: u32) {
        let Some(slot) = self.entries.get_mut(id as usize) else { return };
        let Some(e) = slot.as_mut() else { return };
        e.2 -= 1;
        if e.2 == 0 {
            let key = (Arc::as_ptr(&e.0) as usize, Arc::as_ptr(&e.1) as usize);
            self.by_ptr.remove(&key);
            *slot = None;
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> Option<(&Arc<BackendStats>, &Arc<ServiceStats>)> {
        self.entries.get(id as usize)?.as_ref().map(|(b, s, _)| (b, s))
    }
}

/// What a new connection is.
pub(super) struct NewConn<'a> {
    pub ep: Endpoints,
    pub proto: Proto,
    pub forward: Forward,
    pub state: State,
    pub now_ns: u64,
    pub deadline_ns: u64,
    pub backend_stats: &'a Arc<BackendStats>,
    pub service_stats: &'a Arc<ServiceStats>,
}

/// Records per slab page (a page is about 200 KiB).
pub const PAGE: usize = 1024;

/// A worker's connections.
#[derive(Debug)]
pub(super) struct ConnStore {
    /// Slot `s` is `pages[s / PAGE][s % PAGE]`.
    pages: Vec<Box<[Option<Conn>]>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    index: TupleIndex,
    stats: StatsRefs,
    seeds: Seeds,
}

impl ConnStore {
    /// An empty store hashing with the NIC table's `seeds`.
    pub(super) fn new(seeds: Seeds) -> Self {
        ConnStore {
            pages: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            index: TupleIndex::new(),
            stats: StatsRefs::default(),
            seeds,
        }
    }

    /// Connections now.
    pub(super) fn len(&self) -> usize {
        self.generations.len() - self.free.len()
    }

    fn slot(&self, slot: u32) -> Option<&Option<Conn>> {
        self.pages.get(slot as usize / PAGE)?.get(slot as usize % PAGE)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Option<Conn>> {
        self.pages.get_mut(slot as usize / PAGE)?.get_mut(slot as usize % PAGE)
    }

    /// The hash of a tuple's key (what the index and the NIC's first bucket use).
    pub(super) fn key_hash(&self, key: &LookupKey) -> KeyHash {
        self.seeds.key_hash(key)
    }

    /// The connection and direction a packet's tuple belongs to.
    pub(super) fn find(&self, key: &LookupKey) -> Option<(u32, Dir)> {
        self.find_hashed(self.tag(key), key)
    }

    /// The first half of a key's hash (`KeyHash::a`): all a lookup needs.
    pub(super) fn tag(&self, key: &LookupKey) -> u32 {
        rtl_spec::hash::hash(self.seeds.a, zerocopy::IntoBytes::as_bytes(key))
    }

    /// The whole hash of a key whose `tag` is known (a new connection's first packet).
    pub(super) fn complete_hash(&self, tag: u32, key: &LookupKey) -> KeyHash {
        let b =
            rtl_spec::hash::fmix32(rtl_spec::hash::hash(self.seeds.b, zerocopy::IntoBytes::as_bytes(key)));
        KeyHash { a: tag, b }
    }

    /// [`Self::find`] with the key's `KeyHash::a` already computed.
    pub(super) fn find_hashed(&self, tag: u32, key: &LookupKey) -> Option<(u32, Dir)> {
        self.index.find(tag, |slot, dir| self.get(slot).is_some_and(|c| c.holds(dir, key)))
    }

    /// Files a new connection under both its tuples; returns its slot. `hashes` are the
    /// tuples' ([`Self::key_hash`] of the client → VIP and server → LIP keys).
    pub(super) fn insert(&mut self, n: &NewConn<'_>, hashes: FlowHashes) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.generations.len();
                if s % PAGE == 0 {
                    self.pages.push(std::iter::repeat_with(|| None).take(PAGE).collect());
                }
                self.generations.push(0);
                s as u32
            }
        };
        let generation = self.generations[slot as usize].wrapping_add(1);
        self.generations[slot as usize] = generation;
        let ep = n.ep;
        let stats = self.stats.acquire(n.backend_stats, n.service_stats);
        let record = Some(Conn {
            addrs: [
                to_bytes(ep.client.ip()),
                to_bytes(ep.vip.ip()),
                to_bytes(ep.lip.ip()),
                to_bytes(ep.rs.ip()),
            ],
            ports: [ep.client.port(), ep.vip.port(), ep.lip.port(), ep.rs.port()],
            hashes,
            generation,
            created_ns: n.now_ns,
            last_ns: n.now_ns,
            deadline_ns: n.deadline_ns,
            packets: [0; 2],
            bytes: [0; 2],
            nic_packets: [0; 2],
            nic_bytes: [0; 2],
            timer: 0,
            stats,
            offload: Offload::Host,
            state: n.state,
            proto: n.proto,
            forward: n.forward,
            v6: ep.client.is_ipv6(),
            querying: false,
            server_first: false,
        });
        if let Some(cell) = self.slot_mut(slot) {
            *cell = record;
        }
        self.index.insert(hashes.orig.a, slot << 1);
        self.index.insert(hashes.reply.a, (slot << 1) | 1);
        slot
    }

    /// Takes a connection out (slab, index, counter reference) if `generation` is its own.
    /// Returns it with the counters it pointed at, for the caller's last accounting.
    pub(super) fn remove(
        &mut self,
        slot: u32,
        generation: u32,
    ) -> Option<(Conn, Arc<BackendStats>, Arc<ServiceStats>)> {
        let cell = self.slot_mut(slot)?;
        if cell.as_ref().is_none_or(|c| c.generation != generation) {
            return None;
        }
        let c = cell.take()?;
        self.free.push(slot);
        self.index.remove(c.hashes.orig.a, slot << 1);
        self.index.remove(c.hashes.reply.a, (slot << 1) | 1);
        let (bs, ss) = self.stats.get(c.stats).map(|(b, s)| (b.clone(), s.clone()))?;
        self.stats.release(c.stats);
        Some((c, bs, ss))
    }

    /// The connection in `slot`, whatever its generation.
    pub(super) fn get(&self, slot: u32) -> Option<&Conn> {
        self.slot(slot)?.as_ref()
    }

    /// The connection in `slot`, whatever its generation, for change.
    pub(super) fn get_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slot_mut(slot)?.as_mut()
    }

    /// The connection in `slot` if `generation` is its own.
    pub(super) fn current_mut(&mut self, slot: u32, generation: u32) -> Option<&mut Conn> {
        self.get_mut(slot).filter(|c| c.generation == generation)
    }

    /// The connection in `slot` with the server's and service's counters it points at.
    pub(super) fn with_stats(&mut self, slot: u32) -> Option<(&mut Conn, &BackendStats, &ServiceStats)> {
        let c = self.pages.get_mut(slot as usize / PAGE)?.get_mut(slot as usize % PAGE)?.as_mut()?;
        let (bs, ss) = self.stats.get(c.stats)?;
        Some((c, bs, ss))
    }

    /// Every connection with its slot.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i as u32, c)))
    }

    /// Heap bytes the store holds now (slab, generations, free list, index), for the memory
    /// figures.
    pub(super) fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE * std::mem::size_of::<Option<Conn>>()
            + self.pages.capacity() * std::mem::size_of::<Box<[Option<Conn>]>>()
            + self.generations.capacity() * 4
            + self.free.capacity() * 4
            + self.index.bytes()
    }
}

#[cfg(test)]
mod tests;
