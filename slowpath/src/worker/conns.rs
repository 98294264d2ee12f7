//! A worker's connection store: compact records in a slab, found by either tuple through one
//! open-addressing index of the tuples' hashes.
//!
//! **Records.** A [`Conn`] (68 bytes, a test holds it there) keeps only what is its own: the
//! client's address (4) and port (2), the LIP port (2), its creation and last-seen times (4 + 4,
//! milliseconds compared wrapping), counters (24: [`counts`], 40-bit packets and 56-bit bytes
//! per direction), generation (4), timer links and deadline (12, [`wheel`]), route (4), offload
//! state (4), protocol state (1) and flags (1): 66 bytes and 2 of alignment (every field is at
//! most 4-aligned), the `Option` around it free (the state's niche). An IPv4 client's address
//! is in the record; an IPv6 client's is in a side slab of 16-byte slots ([`clients`]) named by
//! the record, taken with the connection and zeroed when it ends. The VIP, the server, the LIP, the
//! protocol, the mode and the server's and service's counters are the same for every
//! connection to one server through one LIP: they are one [`Route`] of the store, held once
//! with a count of its users, and the connection names it by a 32-bit reference. The NIC's
//! counters are read and cleared and added to the connection's own ([`Conn::add_nic`]), so no
//! copy of them is kept. Records live in a slab of fixed pages of [`PAGE`] records (growing by
//! a page, never by doubling and copying a whole table), indexed by a slot number; a slot's
//! generation grows each time it is reused (a free slot's is kept in the free list), so a stale
//! `(slot, generation)` (an install result or an NIC answer for a connection that ended) never
//! reaches the connection that took the slot next. No connection allocates on the heap.
//!
//! **Index.** Both tuples of every connection (client → VIP, server → LIP) are in one
//! linear-probing table of 8-byte cells: the tuple's hash (`KeyHash::a`, the NIC's first
//! bucket hash with the table's seed) and the slot with the direction in its low bit. A lookup
//! compares the hash first and the record's tuple only on a hash match. Deletion shifts the
//! following cells back (no tombstones), so lookups stay short however many connections come
//! and go. Two cells per connection are 16 bytes at a full table; the table is at most 7/8 full
//! and doubles, so it costs 18 to 37 bytes per connection depending on where the count falls
//! (27.7 at the quick bench's 303k connections).
//!
//! **Bytes per connection.** `sluice bench --only memory` counts the heap the store grows by
//! (capacities, not lengths): the record's 68 bytes, the index's cells, and a little for the
//! free lists and routes; 96.6 bytes per connection at the quick run's 303k (from 133 when the
//! record was 104 bytes and kept both tuple hashes and 16 bytes of client address).
//!
//! **Hashes are not kept.** Every packet that reaches the host hashes its tuple once with the
//! NIC table's first seed ([`rtl_spec::hash::Seeds`]; `KeyHash::a`, [`ConnStore::tag`]) to look
//! it up; a new connection is filed under that hash and its reply tuple's. The record keeps
//! neither: the install hashes both tuples whole ([`flow_hashes`], for flow-offload's shadow
//! index, which places with them), and the removal hashes them again to find the index cells.
//! A connection the NIC takes costs four CRC-32C passes over 40 bytes more than when the record
//! kept the hashes, one that stays on the host two: less than 16 bytes in every record.

use crate::addr::{from_bytes, to_bytes};
use crate::conn::{Dir, Endpoints, Offload, State};
use crate::service::{BackendStats, Forward, Proto, ServiceStats};
use flow_offload::{FlowCounters, FlowHashes};
use rtl_spec::formats::LookupKey;
use rtl_spec::hash::Seeds;
use std::net::SocketAddr;
use std::sync::Arc;

/// A connection: only what is its own. What it shares with every other connection to the same
/// server through the same local address (the VIP, the server, the LIP, the protocol, the mode
/// and the counters) is one `Route` of the store, named by a 32-bit reference.
#[derive(Debug)]
pub struct Conn {
    /// The client's address: an IPv4 client's (`u32::from_be_bytes` of its octets), or the
    /// slot of an IPv6 client's in the store's side slab ([`clients`]). Which one is its
    /// route's family (the VIP's).
    client: u32,
    /// When it was created, in milliseconds of the injected clock, truncated to 32 bits (an
    /// age is a wrapping difference: exact for 49 days, which is all the offload policy asks).
    created_ms: u32,
    /// When it was last seen alive ([`Conn::last_ns`]): milliseconds of the injected clock,
    /// rounded up and truncated to 32 bits (compared wrapping, so exact for 24 days of idleness,
    /// far beyond any timeout).
    last_ms: u32,
    /// Packets and bytes (IP length) of each direction the host path forwarded, plus those
    /// the NIC reported: the NIC's counters are read and cleared ([`Conn::add_nic`]), so no
    /// copy of them is kept. Packed ([`counts`]: 40-bit packets, 56-bit bytes).
    counts: Counts,
    /// Generation of the slot (increases each time the slot is reused).
    pub generation: u32,
    /// Its timer's list in the wheel: previous and next connection ([`wheel`]).
    timer: [u32; 2],
    /// The tick its timer's deadline falls in (from the wheel's start), while `armed`.
    deadline_tick: u32,
    /// Its route in the store ([`ConnStore::route`]).
    route: u32,
    /// The client's port.
    client_port: u16,
    /// The local port toward the server (FullNAT; the client's port where no LIP is used).
    lip_port: u16,
    /// Where it is forwarded ([`Conn::offload`], packed by [`pack_offload`]).
    offload: u32,
    /// Protocol state.
    pub state: State,
    /// [`QUERYING`], [`ARMED`], [`SERVER_FIRST`].
    flags: u8,
}

/// A query for the NIC's counters is on the way.
const QUERYING: u8 = 1;
/// Its timer is armed (in a list of the wheel).
const ARMED: u8 = 2;
/// Its NIC record is (to be) written server first (PROXY protocol): the record's counters count
/// the other way round.
const SERVER_FIRST: u8 = 4;

/// Milliseconds of a nanosecond time, truncated to 32 bits on purpose (compared wrapping).
fn ms32(ns: u64) -> u32 {
    (ns / 1_000_000) as u32
}

/// [`ms32`] rounded up: a time kept so is never earlier than the time it stands for.
fn ms32_up(ns: u64) -> u32 {
    ns.div_ceil(1_000_000) as u32
}

// Where a connection is forwarded, in 4 bytes: a record index (below 2^28, the most an index
// position can name) or one of the three values at the top of the range.
const OFFLOAD_HOST: u32 = u32::MAX;
const OFFLOAD_PENDING: u32 = u32::MAX - 1;
const OFFLOAD_REFUSED: u32 = u32::MAX - 2;

fn pack_offload(o: Offload) -> u32 {
    match o {
        Offload::Host => OFFLOAD_HOST,
        Offload::Pending => OFFLOAD_PENDING,
        Offload::Refused => OFFLOAD_REFUSED,
        Offload::Nic(h) => {
            debug_assert!(h.0 < OFFLOAD_REFUSED, "record index {} out of range", h.0);
            h.0
        }
    }
}

impl Conn {
    /// Where it is forwarded.
    pub fn offload(&self) -> Offload {
        match self.offload {
            OFFLOAD_HOST => Offload::Host,
            OFFLOAD_PENDING => Offload::Pending,
            OFFLOAD_REFUSED => Offload::Refused,
            h => Offload::Nic(flow_offload::Handle(h)),
        }
    }

    /// Moves it to `o`.
    pub fn set_offload(&mut self, o: Offload) {
        self.offload = pack_offload(o);
    }

    /// When it was last seen alive, as of `now_ns`: never earlier than it was, at most 2 ms
    /// later (so a timeout from it is never early), and never after `now_ns`.
    pub fn last_ns(&self, now_ns: u64) -> u64 {
        let idle_ms = ms32(now_ns).wrapping_sub(self.last_ms);
        // The same millisecond (or the rounded-up one ahead of now): no idleness.
        let idle_ms = if idle_ms >= 1 << 31 { 0 } else { u64::from(idle_ms) };
        now_ns.saturating_sub(idle_ms * 1_000_000)
    }

    /// It was seen alive at `at_ns` (a packet now, or the NIC's last hit), unless it was seen
    /// later already (as of `now_ns`).
    pub fn seen(&mut self, at_ns: u64, now_ns: u64) {
        if at_ns > self.last_ns(now_ns) {
            self.last_ms = ms32_up(at_ns);
        }
    }

    /// A query for the NIC's counters is on the way.
    pub(super) fn querying(&self) -> bool {
        self.flags & QUERYING != 0
    }

    /// Marks a query for the NIC's counters as on the way, or answered.
    pub(super) fn set_querying(&mut self, on: bool) {
        self.set_flag(QUERYING, on);
    }

    /// Its NIC record is (to be) written server first (PROXY protocol).
    pub fn server_first(&self) -> bool {
        self.flags & SERVER_FIRST != 0
    }

    /// Marks its NIC record as written server first, or not.
    pub fn set_server_first(&mut self, on: bool) {
        self.set_flag(SERVER_FIRST, on);
    }

    fn armed(&self) -> bool {
        self.flags & ARMED != 0
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// How long ago (`now_ns`) it was created.
    pub fn age(&self, now_ns: u64) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(ms32(now_ns).wrapping_sub(self.created_ms)))
    }

    /// The four endpoints, with the addresses it shares from its `route` (and an IPv6
    /// client's address from the store's side slab).
    pub fn ep(&self, route: RouteRef<'_>) -> Endpoints {
        let v6 = route.vip.is_ipv6();
        Endpoints {
            client: SocketAddr::new(from_bytes(&self.client_bytes(route), v6), self.client_port),
            vip: route.vip,
            lip: SocketAddr::new(route.lip, self.lip_port),
            rs: route.rs,
        }
    }

    /// The client's address in the 16-byte form of a tuple.
    fn client_bytes(&self, route: RouteRef<'_>) -> [u8; 16] {
        if route.vip.is_ipv6() {
            route.clients.get(self.client)
        } else {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&self.client.to_be_bytes());
            b
        }
    }

    /// Packets (original, reply) the host path forwarded plus those the NIC reported; a
    /// direction's count stays at `counts::MAX_PACKETS` once it gets there.
    pub fn packets(&self) -> [u64; 2] {
        [self.counts.packets(0), self.counts.packets(1)]
    }

    /// Bytes (IP length), counted as [`Self::packets`] are (at most `counts::MAX_BYTES`).
    pub fn bytes(&self) -> [u64; 2] {
        [self.counts.bytes(0), self.counts.bytes(1)]
    }

    /// Counts a packet of `len` bytes the host path forwarded in direction `dir`.
    pub fn count(&mut self, dir: Dir, len: u64) {
        self.counts.add(usize::from(dir == Dir::Reply), 1, len);
    }

    /// Adds what the NIC counted for its flow since the counters were last read and cleared
    /// (a query with `clear`, or the flow's last event).
    pub fn add_nic(&mut self, k: &FlowCounters) {
        let k = if self.server_first() { crate::proxy_protocol::swap_counters(*k) } else { *k };
        for d in 0..2 {
            self.counts.add(d, u64::from(k.packets[d]), k.bytes[d]);
        }
    }

    /// Whether its tuple in direction `dir` is `key`.
    fn holds(&self, route: RouteRef<'_>, dir: Dir, key: &LookupKey) -> bool {
        let v6 = route.vip.is_ipv6();
        if key.proto != route.proto.number() || key.family != if v6 { 6 } else { 4 } {
            return false;
        }
        let t = &key.tuple;
        let (src, sport, dst, dport) = match dir {
            Dir::Orig => {
                (self.client_bytes(route), self.client_port, to_bytes(route.vip.ip()), route.vip.port())
            }
            Dir::Reply => (to_bytes(route.rs.ip()), route.rs.port(), to_bytes(route.lip), self.lip_port),
        };
        t.src_addr == src && t.dst_addr == dst && t.src_port.get() == sport && t.dst_port.get() == dport
    }
}

/// The lookup key of a packet's tuple, as the NIC forms it.
pub fn lookup_key(proto: u8, src: SocketAddr, dst: SocketAddr) -> LookupKey {
    LookupKey::new(crate::addr::tuple(src, dst), proto, src.is_ipv6())
}

/// The lookup keys of a connection's tuples: original (client → VIP) and reply (server → LIP).
fn keys(ep: &Endpoints, proto: Proto) -> [LookupKey; 2] {
    [lookup_key(proto.number(), ep.client, ep.vip), lookup_key(proto.number(), ep.rs, ep.lip)]
}

/// The whole hashes of a connection's tuples with the NIC table's `seeds`, for its install
/// (the shadow places the flow with them): the same keys the store files it under.
pub(super) fn flow_hashes(seeds: Seeds, ep: &Endpoints, proto: Proto) -> FlowHashes {
    let [orig, reply] = keys(ep, proto);
    FlowHashes { orig: seeds.key_hash(&orig), reply: seeds.key_hash(&reply) }
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
    /// Slots handed out so far (the slab's length).
    slots: u32,
    /// Free slots with the generation they last had (a slot's generation lives in its record
    /// while it is used, here while it is free).
    free: Vec<(u32, u32)>,
    index: TupleIndex,
    routes: Routes,
    /// The IPv6 connections' client addresses.
    clients: V6Clients,
    seeds: Seeds,
    /// The connections' timers.
    wheel: wheel::Wheel,
}

impl ConnStore {
    /// An empty store hashing with the NIC table's `seeds`, its timers starting at `now_ns`.
    pub(super) fn new(seeds: Seeds, now_ns: u64) -> Self {
        ConnStore {
            wheel: wheel::Wheel::new(now_ns),
            pages: Vec::new(),
            slots: 0,
            free: Vec::new(),
            index: TupleIndex::new(),
            routes: Routes::default(),
            clients: V6Clients::default(),
            seeds,
        }
    }

    /// Connections now.
    pub(super) fn len(&self) -> usize {
        self.slots as usize - self.free.len()
    }

    fn slot(&self, slot: u32) -> Option<&Option<Conn>> {
        self.pages.get(slot as usize / PAGE)?.get(slot as usize % PAGE)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Option<Conn>> {
        self.pages.get_mut(slot as usize / PAGE)?.get_mut(slot as usize % PAGE)
    }

    /// The NIC table's seeds, which the store hashes with.
    pub(super) fn seeds(&self) -> Seeds {
        self.seeds
    }

    /// The connection and direction a packet's tuple belongs to.
    pub(super) fn find(&self, key: &LookupKey) -> Option<(u32, Dir)> {
        self.find_hashed(self.tag(key), key)
    }

    /// The first half of a key's hash (`KeyHash::a`, the NIC's first bucket hash): all the
    /// index needs.
    pub(super) fn tag(&self, key: &LookupKey) -> u32 {
        rtl_spec::hash::key_crc(self.seeds.a, key)
    }

    /// [`Self::find`] with the key's `KeyHash::a` already computed.
    pub(super) fn find_hashed(&self, tag: u32, key: &LookupKey) -> Option<(u32, Dir)> {
        self.index.find(tag, |slot, dir| {
            self.get(slot).is_some_and(|c| self.route_ref(c.route).is_some_and(|r| c.holds(r, dir, key)))
        })
    }

    /// Files a new connection under both its tuples; returns its slot. `orig_tag` is the
    /// [`Self::tag`] of its client → VIP key (computed for the lookup that missed); the
    /// server → LIP key is hashed here.
    pub(super) fn insert(&mut self, n: &NewConn<'_>, orig_tag: u32) -> u32 {
        let (slot, last_generation) = match self.free.pop() {
            Some(free) => free,
            None => {
                let s = self.slots;
                if s as usize % PAGE == 0 {
                    self.pages.push(std::iter::repeat_with(|| None).take(PAGE).collect());
                }
                self.slots += 1;
                (s, 0)
            }
        };
        let generation = last_generation.wrapping_add(1);
        let ep = n.ep;
        let reply_tag = self.tag(&keys(&ep, n.proto)[1]);
        let route = self.routes.acquire(n);
        // The route's family decides how the address is kept, as it decides how it is read.
        let client = to_bytes(ep.client.ip());
        let client = if ep.vip.is_ipv6() {
            self.clients.put(client)
        } else {
            u32::from_be_bytes([client[0], client[1], client[2], client[3]])
        };
        let record = Some(Conn {
            client,
            created_ms: ms32(n.now_ns),
            last_ms: ms32_up(n.now_ns),
            counts: Counts::default(),
            generation,
            timer: [wheel::NIL; 2],
            deadline_tick: 0,
            route,
            client_port: ep.client.port(),
            lip_port: ep.lip.port(),
            offload: pack_offload(Offload::Host),
            state: n.state,
            flags: 0,
        });
        if let Some(cell) = self.slot_mut(slot) {
            *cell = record;
        }
        self.index.insert(orig_tag, slot << 1);
        self.index.insert(reply_tag, (slot << 1) | 1);
        self.arm(slot, n.deadline_ns);
        slot
    }

    /// Takes a connection out (slab, index, route reference, IPv6 client address) if
    /// `generation` is its own. Returns it with its route and endpoints, for the caller's last
    /// accounting.
    pub(super) fn remove(&mut self, slot: u32, generation: u32) -> Option<(Conn, Route, Endpoints)> {
        let cell = self.slot_mut(slot)?;
        if cell.as_ref().is_none_or(|c| c.generation != generation) {
            return None;
        }
        self.unlink(slot);
        let c = self.slot_mut(slot)?.take()?;
        self.free.push((slot, c.generation));
        let ep = c.ep(self.route_ref(c.route)?);
        let route = self.routes.get(c.route)?.clone();
        self.routes.release(c.route);
        if route.vip.is_ipv6() {
            self.clients.release(c.client);
        }
        // The tuples are hashed again rather than their hashes kept in every record: the same
        // keys as at the insert, so the same cells.
        let [orig, reply] = keys(&ep, route.proto);
        let orig_found = self.index.remove(self.tag(&orig), slot << 1);
        let reply_found = self.index.remove(self.tag(&reply), (slot << 1) | 1);
        debug_assert!(orig_found && reply_found, "connection {slot} not in the index under its tuples");
        Some((c, route, ep))
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

    /// The route of connection `c` (a connection of this store).
    pub(super) fn route(&self, c: &Conn) -> RouteRef<'_> {
        // Every connection holds a reference to its route, so the route is there.
        self.route_ref(c.route).expect("a connection's route lives as long as it does")
    }

    fn route_ref(&self, id: u32) -> Option<RouteRef<'_>> {
        Some(RouteRef { route: self.routes.get(id)?, clients: &self.clients })
    }

    /// The endpoints of the connection in `slot`, whatever its generation.
    pub(super) fn ep_of(&self, slot: u32) -> Option<Endpoints> {
        self.get(slot).map(|c| self.ep(c))
    }

    /// The endpoints of connection `c` (a connection of this store).
    pub(super) fn ep(&self, c: &Conn) -> Endpoints {
        c.ep(self.route(c))
    }

    /// The connection in `slot` with its route, the connection for change.
    pub(super) fn with_route(&mut self, slot: u32) -> Option<(&mut Conn, RouteRef<'_>)> {
        let c = self.pages.get_mut(slot as usize / PAGE)?.get_mut(slot as usize % PAGE)?.as_mut()?;
        let route = self.routes.get(c.route)?;
        Some((c, RouteRef { route, clients: &self.clients }))
    }

    /// Every connection with its slot and route.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Conn, RouteRef<'_>)> {
        self.iter_from(0)
    }

    /// Every connection in slot `from` or after, with its slot and route.
    pub(super) fn iter_from(&self, from: u32) -> impl Iterator<Item = (u32, &Conn, RouteRef<'_>)> {
        let from = from as usize;
        self.pages
            .iter()
            .skip(from / PAGE)
            .flat_map(|p| p.iter())
            .enumerate()
            .skip(from % PAGE)
            .filter_map(move |(i, c)| c.as_ref().map(|c| ((from / PAGE * PAGE + i) as u32, c, self.route(c))))
    }

    /// Heap bytes the store holds now (slab, free list, index, IPv6 clients), for the memory
    /// figures.
    pub(super) fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE * std::mem::size_of::<Option<Conn>>()
            + self.pages.capacity() * std::mem::size_of::<Box<[Option<Conn>]>>()
            + self.free.capacity() * 8
            + self.index.bytes()
            + self.clients.heap_bytes()
    }
}

mod clients;
mod counts;
mod index;
mod routes;
#[cfg(test)]
mod tests;
mod wheel;

use clients::V6Clients;
use counts::Counts;
use index::TupleIndex;
use routes::Routes;
pub use routes::{Route, RouteRef};
