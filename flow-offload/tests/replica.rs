//! The NIC's table is the shadow's replica: after every batch, every installed flow is found by
//! a packet lookup in the NIC (both directions, the right record), every removed one misses, and
//! the records read back from the NIC are the ones the shadow holds. Also: a full table refuses
//! without losing anything, and a device reset is repaired from the shadow.

mod common;

use common::rig::{Rig, check, flow, lookup, rig, rig_caps, rig_with, segment};
use flow_offload::table::{Flow, FlowEvent, FlowHashes, FlowTable, Handle, InstallError, Refusal};
use host_driver::{Nic, NicConfig};
use proptest::prelude::*;
use rtl_spec::codes::Status;
use rtl_spec::formats::FlowTuple;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    Install(u32),
    Remove(usize),
    NextHops(usize, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..500).prop_map(Op::Install),
        2 => (0usize..64).prop_map(Op::Remove),
        1 => (0usize..64, 0u16..16).prop_map(|(i, n)| Op::NextHops(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_nic_table_is_the_shadows_replica(prefill in prop_oneof![Just(0u32), Just(58u32), Just(61u32)], ops in prop::collection::vec(prop::collection::vec(op(), 1..12), 1..6)) {
        // 64 records (128 bucket slots + 8 stash): a prefill of 58 or 61 flows puts the index at
        // 91% or 95% before the random operations start, where cuckoo moves are common.
        let mut r = rig(64, 8);
        let mut handles: Vec<(Handle, u32)> = Vec::new();
        for n in 1000..1000 + prefill {
            if let Ok(h) = r.table.install(flow(n)) {
                handles.push((h, n));
            }
        }
        prop_assert!(r.table.commit().unwrap().is_empty());
        let mut gone = Vec::new();
        for batch in ops {
            for o in batch {
                match o {
                    Op::Install(n) => {
                        if handles.iter().any(|(_, m)| *m == n) { continue; }
                        match r.table.install(flow(n)) {
                            Ok(h) => handles.push((h, n)),
                            Err(InstallError::Full) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    Op::Remove(i) if !handles.is_empty() => {
                        let (h, n) = handles.remove(i % handles.len());
                        r.table.remove(h, false).unwrap();
                        gone.push(n);
                    }
                    Op::NextHops(i, hop) if !handles.is_empty() => {
                        let (h, _) = handles[i % handles.len()];
                        r.table.set_flow_next_hops(h, hop, 15 - hop).unwrap();
                    }
                    _ => {}
                }
            }
            let refused = r.table.commit().unwrap();
            prop_assert!(refused.is_empty(), "the NIC refused {refused:?}");
            check(&mut r, &gone);
        }
    }
}

/// Filled until it refuses, with cuckoo moves as one `IndexMove` each (spec 1.5) and, on a
/// device without `INDEX_MOVE`, as two `IndexWrite`s each: the NIC runs one command per install
/// and one or two per move, and the replica holds either way.
#[test]
fn at_high_occupancy_with_cuckoo_moves_the_replica_holds() {
    use rtl_spec::regs::{flow_table, identity};
    let all = rtl_spec::image::model_caps();
    for (caps, per_move) in [(all, 1), (all & !identity::CAPS::INDEX_MOVE.mask(), 2)] {
        let mut r = rig_caps(256, 16, Duration::from_secs(2), caps);
        let commands =
            |r: &mut Rig| r.table.nic().transport().read64(flow_table::BASE + flow_table::COMMANDS);
        let before = commands(&mut r);
        fill_until_refused(&mut r);
        let s = r.table.stats();
        assert_eq!(
            commands(&mut r) - before,
            s.installs + per_move * s.moves,
            "{per_move} command(s) a move"
        );
        check(&mut r, &[]);
    }
}

fn fill_until_refused(r: &mut Rig) {
    let mut n = 0;
    let mut full = 0;
    // Install until the table refuses 20 times (well past the first cuckoo moves).
    while full < 20 {
        match r.table.install(flow(n)) {
            Ok(_) => {}
            Err(InstallError::Full) => full += 1,
            Err(e) => panic!("{e}"),
        }
        n += 1;
        if n % 16 == 0 {
            assert!(r.table.commit().unwrap().is_empty());
        }
    }
    assert!(r.table.commit().unwrap().is_empty());
    let occ = r.table.occupancy();
    println!(
        "occupancy at refusal: {occ}/256 records, {} moves, {} refusals",
        r.table.stats().moves,
        r.table.stats().full
    );
    assert!(r.table.stats().moves > 0, "the fill exercised cuckoo moves");
}

#[test]
fn a_full_table_refuses_and_keeps_what_it_has() {
    let mut r = rig(16, 0);
    let mut installed = 0;
    for n in 0..40 {
        match r.table.install(flow(n)) {
            Ok(_) => installed += 1,
            Err(InstallError::Full) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(r.table.commit().unwrap().is_empty());
    assert!(installed <= 16);
    assert!(r.table.stats().full >= 24);
    check(&mut r, &[]);
}

#[test]
fn a_device_reset_is_repaired_from_the_shadow() {
    let mut r = rig(256, 8);
    for n in 0..100 {
        r.table.install(flow(n)).unwrap();
    }
    assert!(r.table.commit().unwrap().is_empty());
    // Mid-traffic: a packet hits, then the device is reset behind the table's back.
    assert_eq!(lookup(&mut r, &flow(5).orig).map(|(_, reply)| reply), Some(false));
    let Rig { table, wire, clock, model } = r;
    let table = table.recover().unwrap();
    let mut r = Rig { table, wire, clock, model };
    check(&mut r, &[]);
}

#[test]
fn a_device_that_stops_answering_mid_batch_is_reset_and_rewritten() {
    let mut r = rig_with(256, 8, Duration::from_millis(100));
    for n in 0..60 {
        r.table.install(flow(n)).unwrap();
    }
    assert!(r.table.commit().unwrap().is_empty());
    // Traffic flows, then the device hangs with a batch in flight.
    let seventh = r.table.live_records().nth(7).unwrap().0.0;
    assert_eq!(lookup(&mut r, &flow(7).reply), Some((seventh, true)));
    r.model.with_device(|d| d.set_stalled(true));
    for n in 60..90 {
        r.table.install(flow(n)).unwrap();
    }
    let first = r.table.live_records().next().unwrap().0;
    r.table.remove(first, false).unwrap();
    let refused = r.table.commit().expect("recovered, not failed");
    assert!(refused.is_empty());
    assert_eq!(r.table.stats().recoveries, 1);
    assert_eq!(r.table.occupancy(), 89);
    // Every flow the shadow holds, old and new, is back in the NIC, and the removed one is not.
    check(&mut r, &[0]);
}

#[test]
fn submit_does_not_wait_and_completions_are_reaped_later() {
    let mut r = rig(256, 8);
    r.table.set_max_in_flight(16);
    for n in 0..40 {
        r.table.install(flow(n)).unwrap();
    }
    assert_eq!(r.table.pending(), 40);
    let sent = r.table.submit();
    assert_eq!(sent, 16, "bounded in flight");
    assert_eq!(r.table.pending(), 40, "nothing reaped yet");
    assert!(r.table.poll_completions() > 0);
    while r.table.pending() > 0 {
        r.table.submit();
        r.table.poll_completions();
    }
    assert!(r.table.take_refused().is_empty());
    check(&mut r, &[]);
}

#[test]
fn a_restarted_daemon_adopts_the_flows_the_nic_holds() {
    let mut r = rig(256, 8);
    let hop = rtl_spec::formats::NextHopEntry {
        dst_mac: [2, 0, 0, 0, 0, 0x11],
        src_mac: [2, 0, 0, 0, 0, 1],
        ctl: rtl_spec::formats::NextHopCtl::new().with_valid(true),
        ..Default::default()
    };
    r.table.set_next_hop(0, hop).unwrap();
    r.table.set_next_hop(1, hop).unwrap();
    for n in 0..50 {
        r.table.install(flow(n)).unwrap();
    }
    assert!(r.table.commit().unwrap().is_empty());
    // The daemon exits without resetting the NIC; a new one brings it up keeping the table.
    let Rig { table, wire, clock, model } = r;
    drop(table.nic_into_transport());
    let cfg = NicConfig { ring_log2: 8, preserve_table: true, ..NicConfig::default() };
    let nic = Nic::bring_up(Box::new(model.clone()), cfg).unwrap();
    let (table, adopted) = FlowTable::adopt(nic).unwrap();
    assert_eq!(adopted.flows.len(), 50);
    assert_eq!(adopted.skipped, 0);
    let mut cookies: Vec<u32> = adopted.flows.iter().map(|(_, f)| f.cookie).collect();
    cookies.sort_unstable();
    assert_eq!(cookies, (0..50).collect::<Vec<_>>());
    assert!(adopted.flows.iter().all(|(_, f)| f.host_state == (f.cookie % 7) as u8), "host state kept");
    assert!(
        adopted
            .flows
            .iter()
            .all(|(_, f)| (f.seq_delta, f.ts_delta) == (flow(f.cookie).seq_delta, flow(f.cookie).ts_delta)),
        "sequence and timestamp deltas kept"
    );
    let mut r = Rig { table, wire, clock, model };
    assert_eq!(r.table.stats().adopted, 50);
    check(&mut r, &[]);
}

#[test]
fn invalid_flows_are_refused_with_a_reason() {
    let mut r = rig(16, 0);
    let mut f = flow(1);
    f.proto = 1;
    assert!(matches!(r.table.install(f), Err(InstallError::Invalid(_))));
    let mut f = flow(1);
    f.next_hop_orig = 999;
    assert!(matches!(r.table.install(f), Err(InstallError::Invalid(_))));
    let h = r.table.install(flow(2)).unwrap();
    assert!(matches!(r.table.install(flow(2)), Err(InstallError::Invalid(_))), "duplicate tuple");
    r.table.remove(h, false).unwrap();
    assert!(r.table.remove(h, false).is_err(), "double remove");
    assert!(r.table.commit().unwrap().is_empty());
}

/// A TCP packet carrying `t`, ACK and data, with FIN when `fin`.
fn tcp(t: &FlowTuple, fin: bool) -> Vec<u8> {
    let s = segment(t).ack(1).data(b"data");
    let s = if fin { s.fin() } else { s };
    s.frame([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1])
}

#[test]
fn counters_events_touch_and_flushes() {
    let mut r = rig(256, 8);
    let hop = rtl_spec::formats::NextHopEntry {
        dst_mac: [2, 0, 0, 0, 0, 0x11],
        src_mac: [2, 0, 0, 0, 0, 1],
        vlan_tci: 0.into(),
        ctl: rtl_spec::formats::NextHopCtl::new().with_valid(true).with_port(0),
    };
    r.table.set_next_hop(0, hop).unwrap();
    r.table.set_next_hop(1, hop).unwrap();
    let mut idle = flow(1);
    idle.idle_timeout = 1;
    let h_idle = r.table.install(idle).unwrap();
    let h = r.table.install(flow(2)).unwrap();
    for n in 3..20 {
        r.table.install(flow(n)).unwrap();
    }
    assert!(r.table.commit().unwrap().is_empty());

    // Counters: two packets one way, one the other, read back in one batch.
    for t in [flow(2).orig, flow(2).orig, flow(2).reply] {
        r.wire.push_rx(tcp(&t, false), None);
    }
    r.table.nic().transport().service();
    assert_eq!(r.wire.take_tx().len(), 3, "forwarded by the NIC");
    let c = r.table.counters(&[h], true).unwrap();
    assert_eq!(c[0].1.packets, [2, 1]);
    assert_eq!(c[0].1.bytes, [2 * 44, 44]);
    assert_eq!(r.table.counters(&[h], false).unwrap()[0].1.packets, [0, 0], "cleared");

    // A FIN is reported with the flow's handle and cookie.
    r.wire.push_rx(tcp(&flow(2).orig, true), None);
    r.table.nic().transport().service();
    let mut events = Vec::new();
    r.table.poll_events(&mut events, 16);
    assert!(events.iter().any(|e| matches!(e, FlowEvent::Flow { handle, cookie: 2, cause: rtl_spec::codes::FlowCause::Fin, .. } if *handle == h)), "{events:?}");

    // Idle: a Touch is accepted; the ager reports flow 1 once its second has passed.
    r.table.touch(h_idle).unwrap();
    assert!(r.table.commit().unwrap().is_empty());
    r.clock.advance(3_000_000_000);
    r.table.nic().transport().service();
    r.clock.advance(1_000_000_000);
    r.table.nic().transport().service();
    let mut events = Vec::new();
    r.table.poll_events(&mut events, 16);
    assert!(events.iter().any(|e| matches!(e, FlowEvent::Flow { handle, cause: rtl_spec::codes::FlowCause::Idle, .. } if *handle == h_idle)), "{events:?}");

    // Flushes: by backend (only flow 3 uses its real server), by VIP, all.
    let backend = flow(3).reply;
    assert_eq!(r.table.flush_backend(backend.src_addr, backend.src_port.get()), 1);
    assert!(r.table.commit().unwrap().is_empty());
    assert_eq!(lookup(&mut r, &flow(3).orig), None);
    let vip = flow(4).orig;
    let n = r.table.flush_vip(vip.dst_addr, vip.dst_port.get());
    assert_eq!(n, 18, "every remaining flow shares the VIP");
    assert!(r.table.commit().unwrap().is_empty());
    check(&mut r, &[1, 2, 5]);
    r.table.install(flow(30)).unwrap();
    r.table.flush_all();
    assert!(r.table.commit().unwrap().is_empty());
    assert_eq!(r.table.occupancy(), 0);
    check(&mut r, &[30]);
}

#[test]
fn after_a_failed_search_a_full_table_refuses_without_searching_until_a_remove() {
    let mut r = rig(256, 4);
    let mut n = 0;
    let mut handles = Vec::new();
    loop {
        match r.table.install(flow(n)) {
            Ok(h) => handles.push(h),
            Err(InstallError::Full) => break,
            Err(e) => panic!("{e}"),
        }
        n += 1;
    }
    let moves = r.table.stats().moves;
    for k in 0..100 {
        let _ = r.table.install(flow(10_000 + k));
    }
    assert_eq!(r.table.stats().moves, moves, "no cuckoo search while the table is known full");
    assert!(r.table.commit().unwrap().is_empty());
    // A remove makes room: installs work again, searching if they must.
    r.table.remove(handles[0], false).unwrap();
    r.table.remove(handles[1], false).unwrap();
    let again = (20_000..20_100).filter(|k| r.table.install(flow(*k)).is_ok()).count();
    assert!(again >= 1, "room made by the removes is used");
    assert!(r.table.commit().unwrap().is_empty());
    check(&mut r, &[]);
}

/// Hashes that are not the flow's: the shadow places it by them, and the NIC refuses the Insert
/// (`BadPlacement`).
fn wrong_hashes(n: u32) -> FlowHashes {
    let h = |x: u32| rtl_spec::hash::KeyHash { a: x.wrapping_mul(0x9E37_79B9), b: x ^ 0x5555_5555 };
    FlowHashes { orig: h(2 * n + 1), reply: h(2 * n + 2) }
}

#[test]
fn a_refused_install_is_rolled_back_and_leaves_nothing_in_the_shadow() {
    let mut r = rig(64, 8);
    r.table.install(flow(1)).unwrap();
    let h = r.table.install_hashed(flow(2), wrong_hashes(2)).unwrap();
    assert_eq!(r.table.shadow_positions().len(), 4);
    let refused = r.table.commit().unwrap();
    assert_eq!(refused, [Refusal::Install { handle: h, cookie: 2, status: Status::BadPlacement }]);
    assert_eq!((r.table.get(h), r.table.occupancy(), r.table.stats().installs), (None, 1, 1));
    assert_eq!(r.table.shadow_positions().len(), 2, "the refused flow's slots are free again");
    check(&mut r, &[2]);
}

#[test]
fn a_refusal_reaped_late_undoes_its_own_install_not_the_one_that_reused_the_record() {
    let mut r = rig(64, 8);
    // Installed with wrong hashes and removed before the NIC refuses it: the record (and its
    // slots, found through the pending Insert) are free again and the next install reuses it.
    let bad = r.table.install_hashed(flow(1), wrong_hashes(1)).unwrap();
    r.table.remove(bad, false).unwrap();
    assert_eq!(r.table.shadow_positions().len(), 0);
    let good = r.table.install(flow(2)).unwrap();
    assert_eq!(good, bad, "the record is reused");
    let refused = r.table.commit().unwrap();
    assert!(refused.contains(&Refusal::Install { handle: bad, cookie: 1, status: Status::BadPlacement }));
    // The late refusal left the flow that reused the record alone.
    assert_eq!(r.table.get(good), Some(flow(2)));
    assert_eq!(r.table.occupancy(), 1);
    // Once more with the record reused twice while the first Insert is pending, the second
    // install also refused and the third accepted.
    let a = r.table.install_hashed(flow(3), wrong_hashes(3)).unwrap();
    r.table.remove(a, false).unwrap();
    let b = r.table.install_hashed(flow(4), wrong_hashes(4)).unwrap();
    r.table.remove(b, false).unwrap();
    let c = r.table.install(flow(5)).unwrap();
    assert_eq!((a, b), (c, c));
    let refused = r.table.commit().unwrap();
    let installs = refused.iter().filter(|x| matches!(x, Refusal::Install { .. })).count();
    assert_eq!(installs, 2);
    assert_eq!(r.table.get(c), Some(flow(5)));
    check(&mut r, &[1, 3, 4]);
}

/// Flow `n` over IPv6, shaped as [`flow`]'s (2001:db8::/32 addresses). Distinct for every n.
fn flow6(n: u32) -> Flow {
    let addr = |tag: u8, x: u32| {
        let mut a = [0x20, 0x01, 0x0d, 0xb8, tag, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a[12..].copy_from_slice(&x.to_be_bytes());
        a
    };
    let f = flow(n);
    Flow {
        orig: FlowTuple { src_addr: addr(1, n), dst_addr: addr(2, 100), ..f.orig },
        reply: FlowTuple { src_addr: addr(3, n % 200), dst_addr: addr(4, 1), ..f.reply },
        ipv6: true,
        ..f
    }
}

#[test]
fn ipv6_flows_are_replicated_through_cuckoo_moves_and_reused_records() {
    // IPv6 tuples live in the shadow's side slab: a cuckoo move of an IPv6 entry hashes its
    // tuple from there, and a record freed and reused (IPv4 after IPv6, IPv6 after IPv4) holds
    // only its new flow.
    let mut r = rig(64, 8);
    let mut live: Vec<(Handle, Flow)> = Vec::new();
    for n in 0..61 {
        let f = if n % 4 == 3 { flow(n) } else { flow6(n) };
        if let Ok(h) = r.table.install(f) {
            live.push((h, f));
        }
    }
    assert!(r.table.commit().unwrap().is_empty());
    assert!(r.table.stats().moves > 0, "95% of the bucket slots: cuckoo moves");
    for (h, f) in &live {
        assert_eq!(r.table.get(*h), Some(*f));
    }
    check(&mut r, &[]);
    // Every other flow goes; its records are reused by flows of the other family.
    let gone: Vec<(Handle, Flow)> = live.iter().copied().step_by(2).collect();
    for (h, _) in &gone {
        r.table.remove(*h, false).unwrap();
    }
    for (i, (_, old)) in gone.iter().enumerate() {
        let n = 1000 + i as u32;
        let f = if old.ipv6 { flow(n) } else { flow6(n) };
        let h = r.table.install(f).unwrap();
        assert_eq!(r.table.get(h), Some(f));
    }
    assert!(r.table.commit().unwrap().is_empty());
    for (_, old) in &gone {
        assert_eq!(lookup(&mut r, &old.orig), None, "removed flow {} still hits", old.cookie);
    }
    check(&mut r, &[]);
}
