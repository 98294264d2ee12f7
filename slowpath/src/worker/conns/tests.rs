//! Tests of the connection store: the index against a model map under random churn (with
//! forced hash collisions), slot reuse with stale generations, and the shared counter
//! references.

use super::index::{Cell, TupleIndex};
use super::*;
use crate::service::ServiceKey;
use proptest::prelude::*;
use std::collections::HashMap;

fn stats() -> (Arc<BackendStats>, Arc<ServiceStats>) {
    (Arc::new(BackendStats::default()), Arc::new(ServiceStats::default()))
}

fn endpoints(n: u16) -> Endpoints {
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    Endpoints {
        client: SocketAddr::new([192, 0, 2, (n % 200) as u8].into(), 1024u16.wrapping_add(n)),
        vip: sa("10.0.0.1:80"),
        lip: SocketAddr::new([10, 1, 0, 1].into(), 5000u16.wrapping_add(n)),
        rs: sa("10.2.0.7:8080"),
    }
}

fn add(store: &mut ConnStore, ep: Endpoints, bs: &Arc<BackendStats>, ss: &Arc<ServiceStats>) -> u32 {
    add_at(store, ep, (bs, ss), 0, 1)
}

/// [`add`] at `now_ns`, its timer armed for `deadline_ns`.
fn add_at(
    store: &mut ConnStore,
    ep: Endpoints,
    (bs, ss): (&Arc<BackendStats>, &Arc<ServiceStats>),
    now_ns: u64,
    deadline_ns: u64,
) -> u32 {
    let orig_tag = store.tag(&lookup_key(6, ep.client, ep.vip));
    let n = NewConn {
        ep,
        proto: Proto::Tcp,
        forward: crate::service::Forward::FullNat,
        state: State::Tcp(crate::conn::TcpState::SynRecv),
        now_ns,
        deadline_ns,
        backend_stats: bs,
        service_stats: ss,
    };
    store.insert(&n, orig_tag)
}

#[test]
fn both_tuples_find_the_connection_and_its_endpoints_round_trip() {
    let mut store = ConnStore::new(Seeds { a: 1, b: 2 }, 0);
    let (bs, ss) = stats();
    let ep = endpoints(7);
    let slot = add(&mut store, ep, &bs, &ss);
    assert_eq!(store.find(&lookup_key(6, ep.client, ep.vip)), Some((slot, Dir::Orig)));
    assert_eq!(store.find(&lookup_key(6, ep.rs, ep.lip)), Some((slot, Dir::Reply)));
    assert_eq!(store.find(&lookup_key(17, ep.client, ep.vip)), None, "the protocol is part of the key");
    assert_eq!(store.find(&lookup_key(6, ep.vip, ep.client)), None, "a tuple is directional");
    let c = store.get(slot).unwrap();
    assert_eq!(store.ep(c), ep);
    assert_eq!(store.route(c).service(), ServiceKey { vip: ep.vip, proto: Proto::Tcp });
    let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let ep6 = Endpoints {
        client: v6,
        vip: "[2001:db8::80]:80".parse().unwrap(),
        lip: "[fd00::1]:6000".parse().unwrap(),
        rs: "[fd00::7]:80".parse().unwrap(),
    };
    let s6 = add(&mut store, ep6, &bs, &ss);
    assert_eq!(store.ep_of(s6), Some(ep6));
    assert_eq!(store.find(&lookup_key(6, ep6.client, ep6.vip)), Some((s6, Dir::Orig)));
    let mapped_v4: SocketAddr = "[::ffff:192.0.2.7]:1031".parse().unwrap();
    assert_eq!(store.find(&lookup_key(6, mapped_v4, "[::ffff:10.0.0.1]:80".parse().unwrap())), None);
    assert_eq!(store.find(&lookup_key(6, ep6.rs, ep6.lip)), Some((s6, Dir::Reply)));
}

#[test]
fn a_stale_generation_never_reaches_the_connection_that_reused_the_slot() {
    let mut store = ConnStore::new(Seeds::default(), 0);
    let (bs, ss) = stats();
    let first = add(&mut store, endpoints(1), &bs, &ss);
    let old_gen = store.get(first).unwrap().generation;
    assert!(store.remove(first, old_gen).is_some());
    let second = add(&mut store, endpoints(2), &bs, &ss);
    assert_eq!(second, first, "the slot is reused");
    let new_gen = store.get(second).unwrap().generation;
    assert_ne!(new_gen, old_gen);
    assert!(store.current_mut(second, old_gen).is_none(), "a stale handle finds nothing");
    assert!(store.remove(second, old_gen).is_none(), "a stale handle removes nothing");
    assert_eq!(store.find(&lookup_key(6, endpoints(1).client, endpoints(1).vip)), None);
    assert!(store.find(&lookup_key(6, endpoints(2).client, endpoints(2).vip)).is_some());
    assert_eq!(store.len(), 1);
}

#[test]
fn routes_are_shared_and_released_with_the_last_connection() {
    let mut store = ConnStore::new(Seeds::default(), 0);
    let (bs, ss) = stats();
    let a = add(&mut store, endpoints(1), &bs, &ss);
    let b = add(&mut store, endpoints(2), &bs, &ss);
    assert_eq!(store.routes.entries.iter().flatten().count(), 1, "one route per server, service and LIP");
    assert_eq!(Arc::strong_count(&bs), 2, "the store holds one reference, not one per connection");
    // Another LIP toward the same server is a route of its own; the counters are shared.
    let other_lip = Endpoints { lip: "10.1.0.2:7000".parse().unwrap(), ..endpoints(3) };
    let c = add(&mut store, other_lip, &bs, &ss);
    assert_eq!(store.routes.entries.iter().flatten().count(), 2);
    assert_eq!(store.ep_of(c), Some(other_lip));
    assert_eq!(store.ep_of(a), Some(endpoints(1)), "the first route is unchanged");
    let gc = store.get(c).unwrap().generation;
    store.remove(c, gc).unwrap();
    let (ga, gb) = (store.get(a).unwrap().generation, store.get(b).unwrap().generation);
    let (_, route, ep) = store.remove(a, ga).unwrap();
    assert_eq!(ep, endpoints(1), "a removed connection's endpoints come back with it");
    assert!(Arc::ptr_eq(&route.backend_stats, &bs));
    assert!(Arc::ptr_eq(&route.service_stats, &ss));
    drop(route);
    assert_eq!(Arc::strong_count(&bs), 2);
    store.remove(b, gb).unwrap();
    assert_eq!(Arc::strong_count(&bs), 1, "released with the last connection");
    assert_eq!(store.routes.entries.iter().flatten().count(), 0);
    assert!(store.routes.by_key.is_empty());
}

/// An IPv6 client at `n`: its own address, port and LIP port.
fn endpoints6(n: u16) -> Endpoints {
    let client = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, n, 1);
    Endpoints {
        client: SocketAddr::new(client.into(), 1024u16.wrapping_add(n)),
        vip: "[2001:db8::80]:80".parse().unwrap(),
        lip: SocketAddr::new("fd00::1".parse().unwrap(), 5000 + n),
        rs: "[fd00::7]:8080".parse().unwrap(),
    }
}

#[test]
fn an_ipv6_clients_address_lives_in_the_side_slab_and_leaves_nothing_behind() {
    let mut store = ConnStore::new(Seeds::default(), 0);
    let (bs, ss) = stats();
    for n in 0..10 {
        add(&mut store, endpoints(n), &bs, &ss);
    }
    assert_eq!(store.clients.slots(), 0, "IPv4 connections keep their client in the record");
    let old = add(&mut store, endpoints6(1), &bs, &ss);
    let old_gen = store.get(old).unwrap().generation;
    let v6_slot = store.get(old).unwrap().client;
    assert_eq!(store.clients.get(v6_slot), to_bytes(endpoints6(1).client.ip()));
    let (_, _, ep) = store.remove(old, old_gen).unwrap();
    assert_eq!(ep, endpoints6(1), "the removed connection's endpoints are read before its slot goes");
    assert_eq!(store.clients.get(v6_slot), [0; 16], "a freed slot keeps nothing of its client");
    // The next IPv6 connection takes both the record's slot and the address's, and sees only
    // its own client; the old connection's handle and tuple reach nothing.
    let new = add(&mut store, endpoints6(2), &bs, &ss);
    assert_eq!((new, store.get(new).unwrap().client), (old, v6_slot));
    assert_eq!(store.clients.slots(), 1);
    assert_eq!(store.ep_of(new), Some(endpoints6(2)));
    assert!(store.current_mut(new, old_gen).is_none());
    assert!(store.remove(new, old_gen).is_none());
    assert_eq!(store.find(&lookup_key(6, endpoints6(1).client, endpoints6(1).vip)), None);
    assert_eq!(store.find(&lookup_key(6, endpoints6(2).client, endpoints6(2).vip)), Some((new, Dir::Orig)));
    assert_eq!(store.find(&lookup_key(6, endpoints6(2).rs, endpoints6(2).lip)), Some((new, Dir::Reply)));
    // An IPv4 connection in a slot an IPv6 one had leaves the address slot free.
    let g = store.get(new).unwrap().generation;
    store.remove(new, g).unwrap();
    let v4 = add(&mut store, endpoints(77), &bs, &ss);
    assert_eq!((v4, store.clients.len()), (new, 0));
    assert_eq!(store.ep_of(v4), Some(endpoints(77)));
    let again = add(&mut store, endpoints6(3), &bs, &ss);
    assert_eq!((store.get(again).unwrap().client, store.clients.slots()), (v6_slot, 1));
}

#[derive(Clone, Debug)]
enum Churn {
    Add(u16, bool),
    Remove(usize),
}

proptest! {
    /// IPv4 and IPv6 connections come and go in any order: every live connection's endpoints
    /// and tuples are its own, every ended connection's handle reaches nothing, the side slab
    /// holds exactly the live IPv6 clients, and every slot it does not use is zeroed.
    #[test]
    fn the_side_slab_agrees_with_a_model_under_churn(ops in prop::collection::vec(
        prop_oneof![
            3 => (0u16..64, any::<bool>()).prop_map(|(n, v6)| Churn::Add(n, v6)),
            2 => any::<usize>().prop_map(Churn::Remove),
        ], 1..200)) {
        let mut store = ConnStore::new(Seeds { a: 3, b: 4 }, 0);
        let (bs, ss) = stats();
        let mut live: HashMap<u32, (u32, Endpoints)> = HashMap::new();
        let mut ended: Vec<(u32, u32, Endpoints)> = Vec::new();
        for op in ops {
            match op {
                Churn::Add(n, v6) => {
                    let ep = if v6 { endpoints6(n) } else { endpoints(n) };
                    if live.values().any(|(_, e)| *e == ep) {
                        continue;
                    }
                    let slot = add(&mut store, ep, &bs, &ss);
                    live.insert(slot, (store.get(slot).unwrap().generation, ep));
                }
                Churn::Remove(i) if !live.is_empty() => {
                    let slot = *live.keys().nth(i % live.len()).unwrap();
                    let (g, ep) = live.remove(&slot).unwrap();
                    prop_assert_eq!(store.remove(slot, g).map(|(_, _, e)| e), Some(ep));
                    ended.push((slot, g, ep));
                }
                Churn::Remove(_) => {}
            }
            for (&slot, &(g, ep)) in &live {
                prop_assert_eq!(store.ep_of(slot), Some(ep));
                prop_assert!(store.current_mut(slot, g).is_some());
                prop_assert_eq!(store.find(&lookup_key(6, ep.client, ep.vip)), Some((slot, Dir::Orig)));
                prop_assert_eq!(store.find(&lookup_key(6, ep.rs, ep.lip)), Some((slot, Dir::Reply)));
            }
            for &(slot, g, ep) in &ended {
                prop_assert!(store.current_mut(slot, g).is_none(), "a stale handle reached slot {}", slot);
                if !live.values().any(|(_, e)| *e == ep) {
                    prop_assert_eq!(store.find(&lookup_key(6, ep.client, ep.vip)), None);
                }
            }
            let in_use: Vec<u32> =
                live.iter().filter(|(_, (_, ep))| ep.vip.is_ipv6()).map(|(&s, _)| store.get(s).unwrap().client).collect();
            prop_assert_eq!(store.clients.len(), in_use.len());
            for s in (0..store.clients.slots()).filter(|s| !in_use.contains(s)) {
                prop_assert_eq!(store.clients.get(s), [0; 16], "free slot {} keeps an address", s);
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u32, u32),
    Remove(usize),
}

proptest! {
    /// The index agrees with a map after any mix of inserts and removes, with tags drawn from
    /// a handful of values so that runs of equal hashes and wrap-around are common.
    #[test]
    fn the_index_agrees_with_a_map(ops in prop::collection::vec(
        prop_oneof![
            3 => (0u32..6, any::<u32>()).prop_map(|(t, at)| Op::Insert(t.wrapping_mul(0x1000_0001) | 63, at >> 1)),
            2 => any::<usize>().prop_map(Op::Remove),
        ], 1..400)) {
        let mut ix = TupleIndex::new();
        let mut model: HashMap<u32, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(tag, at) => {
                    if model.contains_key(&at) {
                        continue;
                    }
                    ix.insert(tag, at);
                    model.insert(at, tag);
                }
                Op::Remove(i) if !model.is_empty() => {
                    let at = *model.keys().nth(i % model.len()).unwrap();
                    let tag = model.remove(&at).unwrap();
                    prop_assert!(ix.remove(tag, at));
                    prop_assert!(!ix.remove(tag, at));
                }
                Op::Remove(_) => {}
            }
            prop_assert_eq!(ix.len, model.len());
            for (&at, &tag) in &model {
                let found = ix.find(tag, |slot, dir| (slot << 1) | u32::from(dir == Dir::Reply) == at);
                prop_assert!(found.is_some(), "cell {at} of tag {tag:#x} lost");
            }
        }
    }
}

/// The record's size is the figure the memory budget is made of (`sluice bench --only
/// memory`): a change that grows it should be a decision, not an accident. 68 bytes: 66 of
/// fields (the module's doc lists them) and 2 of alignment; the `Option` costs nothing.
#[test]
fn a_connection_record_stays_compact() {
    let size = std::mem::size_of::<Option<Conn>>();
    assert!(size <= 68, "a connection record is {size} bytes");
    assert_eq!(std::mem::align_of::<Conn>(), 4, "no field needs more than 4-byte alignment");
    assert_eq!(std::mem::size_of::<Cell>(), 8);
}

#[test]
fn the_installs_hashes_are_the_nics_and_the_index_files_under_their_first_halves() {
    let seeds = Seeds { a: 0x1234, b: 0x9876 };
    let mut store = ConnStore::new(seeds, 0);
    let (bs, ss) = stats();
    let ep = endpoints(3);
    let slot = add(&mut store, ep, &bs, &ss);
    let (orig, reply) = (lookup_key(6, ep.client, ep.vip), lookup_key(6, ep.rs, ep.lip));
    let h = flow_hashes(store.seeds(), &store.ep_of(slot).unwrap(), Proto::Tcp);
    assert_eq!(h, FlowHashes { orig: seeds.key_hash(&orig), reply: seeds.key_hash(&reply) });
    assert_eq!((store.tag(&orig), store.tag(&reply)), (h.orig.a, h.reply.a));
    let only = |tag: u32| store.index.find(tag, |s, _| s == slot);
    assert_eq!((only(h.orig.a), only(h.reply.a)), (Some((slot, Dir::Orig)), Some((slot, Dir::Reply))));
}

/// The index cells of a removed connection are found again from its tuples (their hashes
/// are not kept): every removal, of every family and mode, leaves the index as it was.
#[test]
fn a_removal_hashes_its_tuples_again_and_takes_both_cells_out() {
    let mut store = ConnStore::new(Seeds { a: 7, b: 9 }, 0);
    let (bs, ss) = stats();
    let v6 = Endpoints {
        client: "[2001:db8::1]:443".parse().unwrap(),
        vip: "[2001:db8::80]:80".parse().unwrap(),
        lip: "[fd00::1]:6000".parse().unwrap(),
        rs: "[fd00::7]:80".parse().unwrap(),
    };
    // NAT, DR, TUN: the client stands where the LIP would.
    let nat = Endpoints { lip: endpoints(60).client, ..endpoints(60) };
    let mut live = Vec::new();
    for (i, ep) in (0..50).map(endpoints).chain([v6, nat]).enumerate() {
        live.push((add(&mut store, ep, &bs, &ss), ep));
        if i % 3 == 2 {
            let (slot, _) = live.remove(i % live.len());
            let g = store.get(slot).unwrap().generation;
            assert!(store.remove(slot, g).is_some());
        }
        assert_eq!(store.index.len, 2 * live.len());
    }
    for (slot, ep) in &live {
        assert_eq!(store.find(&lookup_key(6, ep.client, ep.vip)), Some((*slot, Dir::Orig)));
        assert_eq!(store.find(&lookup_key(6, ep.rs, ep.lip)), Some((*slot, Dir::Reply)));
    }
    for (slot, _) in live {
        let g = store.get(slot).unwrap().generation;
        assert!(store.remove(slot, g).is_some());
    }
    assert_eq!(store.index.len, 0);
    assert!(store.index.cells.iter().all(|c| c.is_free()));
}

#[test]
fn the_nics_cleared_counters_add_up_with_the_host_paths() {
    let mut store = ConnStore::new(Seeds::default(), 0);
    let (bs, ss) = stats();
    let slot = add(&mut store, endpoints(4), &bs, &ss);
    let c = store.get_mut(slot).unwrap();
    for (dir, len) in [(Dir::Orig, 60), (Dir::Reply, 60), (Dir::Orig, 60), (Dir::Reply, 60), (Dir::Orig, 60)]
    {
        c.count(dir, len);
    }
    assert_eq!((c.packets(), c.bytes()), ([3, 2], [180, 120]));
    let read = |p: [u32; 2], b: [u64; 2]| FlowCounters { packets: p, bytes: b, ..FlowCounters::default() };
    // Two clearing reads: each brings only what the NIC counted since the one before.
    c.add_nic(&read([10, 20], [1000, 20_000]));
    c.add_nic(&read([1, 2], [100, 2000]));
    assert_eq!(c.packets(), [14, 24]);
    assert_eq!(c.bytes(), [1280, 22_120]);
    // A record written server first counts the other way round.
    c.set_server_first(true);
    c.add_nic(&read([5, 0], [500, 0]));
    assert_eq!((c.packets(), c.bytes()), ([14, 29], [1280, 22_620]));
    // The NIC's counts of a long flow: a direction stays at its greatest count, the other
    // keeps counting.
    c.set_server_first(false);
    c.add_nic(&read([u32::MAX, 1], [u64::MAX, 40]));
    assert_eq!((c.packets(), c.bytes()), ([14 + u64::from(u32::MAX), 30], [counts::MAX_BYTES, 22_660]));
}

#[test]
fn offload_and_age_round_trip_through_their_packed_forms() {
    let mut store = ConnStore::new(Seeds::default(), 0);
    let (bs, ss) = stats();
    let slot = add(&mut store, endpoints(5), &bs, &ss);
    let c = store.get_mut(slot).unwrap();
    assert_eq!(c.offload(), Offload::Host);
    for o in [Offload::Pending, Offload::Refused, Offload::Nic(flow_offload::Handle(0)), Offload::Host] {
        c.set_offload(o);
        assert_eq!(c.offload(), o);
    }
    c.set_offload(Offload::Nic(flow_offload::Handle((1 << 28) - 1)));
    assert_eq!(c.offload(), Offload::Nic(flow_offload::Handle((1 << 28) - 1)));
    // Created at 0 ns: an age is exact, and stays so across the 32-bit millisecond wrap.
    assert_eq!(c.age(1_500_000_000), std::time::Duration::from_millis(1500));
    c.created_ms = u32::MAX - 499;
    assert_eq!(c.age((u64::from(u32::MAX) + 1 + 500) * 1_000_000), std::time::Duration::from_secs(1));
}

/// Arms, re-arms (earlier and later) and removes timers in random order against a model of
/// when each connection is due: every due connection fires once, at most a tick late, never
/// early, and a removed or re-armed timer never fires for its old deadline.
mod timers {
    use super::*;
    use crate::timer::TICK_NS;

    #[derive(Clone, Debug)]
    enum T {
        Add(u16, u64),
        Rearm(usize, u64),
        Remove(usize),
        Advance(u64),
    }

    proptest! {
        #[test]
        fn the_wheel_in_the_records_agrees_with_a_model(ops in prop::collection::vec(
            prop_oneof![
                3 => (any::<u16>(), 0u64..50_000).prop_map(|(n, d)| T::Add(n, d)),
                2 => (any::<usize>(), 0u64..50_000).prop_map(|(i, d)| T::Rearm(i, d)),
                1 => any::<usize>().prop_map(T::Remove),
                3 => (0u64..20_000).prop_map(T::Advance),
            ], 1..300)) {
            const MS: u64 = 1_000_000;
            let mut now = 5_000 * MS;
            let mut store = ConnStore::new(Seeds::default(), now);
            let (bs, ss) = stats();
            // slot -> (generation, deadline)
            let mut model: HashMap<u32, (u32, u64)> = HashMap::new();
            let mut out = Vec::new();
            for op in ops {
                match op {
                    T::Add(n, d) => {
                        let ep = endpoints(n);
                        if store.find(&lookup_key(6, ep.client, ep.vip)).is_some() {
                            continue;
                        }
                        let deadline = now + d * MS;
                        let slot = add_at(&mut store, ep, (&bs, &ss), now, deadline);
                        model.insert(slot, (store.get(slot).unwrap().generation, deadline));
                    }
                    T::Rearm(i, d) if !model.is_empty() => {
                        let slot = *model.keys().nth(i % model.len()).unwrap();
                        let deadline = now + d * MS;
                        store.arm(slot, deadline);
                        model.get_mut(&slot).unwrap().1 = deadline;
                    }
                    T::Remove(i) if !model.is_empty() => {
                        let slot = *model.keys().nth(i % model.len()).unwrap();
                        let (g, _) = model.remove(&slot).unwrap();
                        prop_assert!(store.remove(slot, g).is_some());
                    }
                    T::Advance(d) => {
                        now += d * MS;
                        out.clear();
                        store.advance_timers(now, &mut out);
                        for &(slot, g) in &out {
                            let (mg, deadline) = model.remove(&slot).expect("fired once, for a live connection");
                            prop_assert_eq!(mg, g);
                            prop_assert!(deadline < now, "fired early: due {} at {}", deadline, now);
                            // A fired connection is disarmed; the test ends it as the worker would.
                            prop_assert!(store.remove(slot, g).is_some());
                        }
                        for &(_, deadline) in model.values() {
                            prop_assert!(deadline + 2 * TICK_NS > now, "late: due {} still armed at {}", deadline, now);
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(store.timers_armed(), model.len());
            }
        }
    }
}

#[test]
fn the_last_sighting_in_milliseconds_is_never_early_and_never_ahead_of_now() {
    const MS: u64 = 1_000_000;
    let mut store = ConnStore::new(Seeds::default(), 0);
    let (bs, ss) = stats();
    let slot = add(&mut store, endpoints(6), &bs, &ss);
    let c = store.get_mut(slot).unwrap();
    for (seen, now) in [(5 * MS + 300, 5 * MS + 400), (7 * MS + 1, 90_000 * MS), (9 * MS, 9 * MS)] {
        c.seen(seen, seen);
        let last = c.last_ns(now);
        assert!(last >= seen && last <= now && last < seen + 2 * MS, "seen {seen}, now {now}: {last}");
    }
    // An older sighting (the NIC's last hit before the host's packet) changes nothing.
    let before = c.last_ns(100_000 * MS);
    c.seen(MS, 100_000 * MS);
    assert_eq!(c.last_ns(100_000 * MS), before);
    // Across the 32-bit millisecond wrap (49.7 days of the clock; idleness is always far
    // shorter, timeouts being at most 7 days).
    let wrap = (1u64 << 32) * MS;
    c.last_ms = ms32_up(wrap - 3 * MS);
    let last = c.last_ns(wrap + 10 * MS);
    assert!((wrap - 3 * MS..wrap - MS).contains(&last), "{last}");
}
