//! The slow path's behaviour through the in-process NIC: ARP and neighbour discovery for the
//! addresses it owns, ICMP echo and error translation, defence (non-SYN without a connection,
//! the half-open bound), draining, port exhaustion and quarantine, timeouts on the injected
//! clock, scheduling ratios, several workers, and cutting a server's connections.

#![allow(clippy::many_single_char_names)]

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use slowpath::laddr::PortRange;
use slowpath::sched::SchedulerKind;
use slowpath::service::{BackendConfig, Proto, ServiceKey};
use sluice_test_support::engine::*;
use sluice_test_support::frame::{L4, Pkt, Seg};
use sluice_test_support::verify::{checksums, endpoints};
use std::net::SocketAddr;

fn tcp_key() -> ServiceKey {
    ServiceKey { vip: sa("10.10.1.100:80"), proto: Proto::Tcp }
}

/// Opens a connection from `client` (SYN, SYN-ACK, ACK); returns (lip, rs).
fn open(r: &mut Rig, client: &str) -> (SocketAddr, SocketAddr) {
    let (_, s) = r.client_sends(Seg::new(client, "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
    assert_eq!(s.len(), 1, "SYN from {client} forwarded");
    let (lip, rs) = endpoints(&s[0]);
    let mac = if rs.ip() == ip("10.10.2.12") { RS2_MAC } else { RS1_MAC };
    r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1001).frame(mac, P1_MAC));
    r.client_sends(Seg::new(client, "10.10.1.100:80").ack(1001).seq(1001).frame(CLIENT_MAC, P0_MAC));
    (lip, rs)
}

fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xFF; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}

#[test]
fn arp_is_answered_for_vips_lips_and_unhosted_port_addresses_only() {
    let mut r = rig();
    for (port, tpa) in [(0u8, [10, 10, 1, 100]), (1, [10, 10, 2, 1]), (0, [10, 10, 1, 1])] {
        let req =
            arp_request([2, 0, 0, 0, 9, 9], if port == 0 { [10, 10, 1, 50] } else { [10, 10, 2, 50] }, tpa);
        let (a, b) = if port == 0 { r.client_sends(req) } else { r.server_sends(req) };
        let got = if port == 0 { a } else { b };
        assert_eq!(got.len(), 1, "a reply for {tpa:?}");
        let f = &got[0];
        assert_eq!(&f[..6], &[2, 0, 0, 0, 9, 9], "unicast to the asker");
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 2], "a reply");
        let mac = if port == 0 { P0_MAC } else { P1_MAC };
        assert_eq!(&f[22..28], &mac, "the port's MAC");
        assert_eq!(&f[28..32], &tpa);
    }
    let (a, b) = r.client_sends(arp_request([2, 0, 0, 0, 9, 9], [10, 10, 1, 50], [10, 10, 1, 77]));
    assert!(a.is_empty() && b.is_empty(), "no answer for an address nobody owns");
}

#[test]
fn neighbour_solicitations_for_an_ipv6_vip_are_advertised() {
    let mut r = rig();
    let vip: std::net::Ipv6Addr = "fd00:1::100".parse().unwrap();
    let src: std::net::Ipv6Addr = "fd00:1::10".parse().unwrap();
    let o = vip.octets();
    let snm: std::net::Ipv6Addr =
        format!("ff02::1:ff{:02x}:{:02x}{:02x}", o[13], o[14], o[15]).parse().unwrap();
    let mut body = vip.octets().to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&CLIENT_MAC);
    let ns = etherparse::Icmpv6Type::Unknown { type_u8: 135, code_u8: 0, bytes5to8: [0; 4] };
    let f = Pkt::ip(src.into(), snm.into(), 255, L4::Icmp6(ns), &body)
        .l2(CLIENT_MAC, [0x33, 0x33, 0xff, o[13], o[14], o[15]])
        .build();
    let (to_client, _) = r.client_sends(f);
    assert_eq!(to_client.len(), 1, "a neighbour advertisement");
    let na = &to_client[0];
    checksums(na).unwrap();
    let p = SlicedPacket::from_ethernet(na).unwrap();
    let Some(NetSlice::Ipv6(ip6)) = p.net else { panic!() };
    assert_eq!(ip6.header().source_addr(), vip);
    assert_eq!(ip6.header().destination_addr(), src);
    assert_eq!(ip6.header().hop_limit(), 255);
    let Some(TransportSlice::Icmpv6(i)) = p.transport else { panic!() };
    assert_eq!(i.type_u8(), 136);
    assert_eq!(&na[..6], &CLIENT_MAC);
}

#[test]
fn echo_to_a_vip_is_answered() {
    let mut r = rig();
    let echo = etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 7, seq: 3 });
    let f = Pkt::ip(ip("10.10.1.10"), ip("10.10.1.100"), 64, L4::Icmp4(echo), b"ping!")
        .l2(CLIENT_MAC, P0_MAC)
        .build();
    let (to_client, _) = r.client_sends(f);
    assert_eq!(to_client.len(), 1);
    checksums(&to_client[0]).unwrap();
    let p = SlicedPacket::from_ethernet(&to_client[0]).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = p.transport else { panic!() };
    assert_eq!(i.type_u8(), 0, "echo reply");
    assert_eq!(i.payload(), b"ping!");
}

#[test]
fn fragmentation_needed_from_the_server_side_reaches_the_client_translated() {
    let mut r = rig();
    let client = "10.10.1.10:43000";
    let (lip, rs) = open(&mut r, client);
    // A router on the server side says the LIP → RS packet was too big (MTU 1400); it quotes
    // that packet's IP header and first 8 bytes.
    let quoted = Seg::new(&lip.to_string(), &rs.to_string())
        .ack(1001)
        .seq(1001)
        .data(&[0; 1460])
        .frame([0; 6], [0; 6]);
    let mut msg = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    msg.extend_from_slice(&quoted[14..14 + 28]);
    let too_big = etherparse::Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
    );
    let f = Pkt::ip(ip("10.10.2.11"), ip("10.10.2.1"), 64, L4::Icmp4(too_big), &msg[8..])
        .l2(RS1_MAC, P1_MAC)
        .build();
    let (to_client, _) = r.server_sends(f);
    assert_eq!(to_client.len(), 1, "translated to the client");
    let out = &to_client[0];
    checksums(out).unwrap();
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(NetSlice::Ipv4(outer)) = &p.net else { panic!() };
    assert_eq!(outer.header().source_addr().octets(), [10, 10, 1, 100], "from the VIP");
    assert_eq!(outer.header().destination_addr().octets(), [10, 10, 1, 10], "to the client");
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else { panic!() };
    assert_eq!((i.type_u8(), i.code_u8()), (3, 4));
    assert_eq!(&i.bytes5to8()[2..], &[0x05, 0x78], "the MTU kept");
    let inner = i.payload();
    assert_eq!(&inner[12..16], &[10, 10, 1, 10], "inner source: the client");
    assert_eq!(&inner[16..20], &[10, 10, 1, 100], "inner destination: the VIP");
    assert_eq!(&inner[20..24], &[0xA7, 0xF8, 0, 80], "inner ports: client 43000 → 80");
    let ih = etherparse::Ipv4HeaderSlice::from_slice(inner).unwrap().to_header();
    assert_eq!(ih.header_checksum, ih.calc_header_checksum(), "inner header checksum");
}

#[test]
fn a_non_syn_packet_without_a_connection_is_dropped_and_counted() {
    let mut r = rig();
    let (a, b) = r.client_sends(
        Seg::new("10.10.1.10:44000", "10.10.1.100:80").ack(5).data(b"x").frame(CLIENT_MAC, P0_MAC),
    );
    assert!(a.is_empty() && b.is_empty());
    assert!(r.engine.conns(false).is_empty());
    let st = r.engine.stats();
    assert_eq!(st.workers[0].drops.iter().find(|d| d.0 == "no_connection").unwrap().1, 1);
}

#[test]
fn the_half_open_bound_refuses_syns_beyond_it() {
    let mut cfg = config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]));
    cfg.half_open_limit = 3;
    let mut r = rig_with(cfg, 1024);
    for n in 0..5u16 {
        r.client_sends(
            Seg::new(&format!("10.10.1.10:{}", 45000 + n), "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC),
        );
    }
    assert_eq!(r.engine.conns(false).len(), 3, "three half-open, then refused");
    let st = r.engine.stats();
    assert_eq!(st.workers[0].drops.iter().find(|d| d.0 == "half_open").unwrap().1, 2);
}

#[test]
fn a_syn_recv_connection_times_out_on_the_injected_clock() {
    let mut r = rig();
    r.client_sends(Seg::new("10.10.1.10:46000", "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.engine.conns(false).len(), 1);
    assert_eq!(r.engine.conns(false)[0].state, "SYN_RECV");
    r.advance(29 * S);
    assert_eq!(r.engine.conns(false).len(), 1);
    r.advance(2 * S);
    assert!(r.engine.conns(false).is_empty(), "SYN_RECV timeout is 30 s");
    assert_eq!(r.engine.stats().workers[0].half_open, 0);
}

#[test]
fn weight_zero_drains_and_existing_connections_stay() {
    let mut r =
        rig_with(config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("10.10.2.12:80", 1)])), 1024);
    let (_, first) = open(&mut r, "10.10.1.10:47000");
    r.engine.set_weight(&tcp_key(), first, 0).unwrap();
    for n in 1..10u16 {
        let (_, rs) = open(&mut r, &format!("10.10.1.10:{}", 47000 + n));
        assert_ne!(rs, first, "a drained server takes no new connection");
    }
    let flows = r.engine.conns(false);
    assert_eq!(flows.iter().filter(|f| f.endpoints.rs == first).count(), 1, "its connection stays");
}

#[test]
fn wrr_gives_the_configured_ratio_over_many_connections() {
    let mut r = rig_with(
        config(1, services(SchedulerKind::Wrr, &[("10.10.2.11:80", 3), ("10.10.2.12:80", 1)])),
        4096,
    );
    let mut counts = [0u32; 2];
    for n in 0..400u16 {
        let (_, s) = r.client_sends(
            Seg::new(&format!("10.10.1.10:{}", 20000 + n), "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC),
        );
        let (_, rs) = endpoints(&s[0]);
        counts[usize::from(rs.ip() == ip("10.10.2.12"))] += 1;
    }
    assert_eq!(counts, [300, 100], "3:1 exactly over whole cycles");
}

#[test]
fn port_exhaustion_is_a_counted_refusal_and_quarantine_holds_the_tuple() {
    let mut cfg = config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]));
    cfg.services[0].local_addresses = vec![ip("10.10.2.1")];
    cfg.ports_range = PortRange { min: 2000, max: 2001, quarantine_ns: 60 * S };
    let mut r = rig_with(cfg, 1024);
    let (a, _) = open(&mut r, "10.10.1.10:48000");
    let (b, _) = open(&mut r, "10.10.1.10:48001");
    assert_ne!(a.port(), b.port());
    let (x, y) =
        r.client_sends(Seg::new("10.10.1.10:48002", "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
    assert!(x.is_empty() && y.is_empty(), "no port: refused, never reused");
    let st = r.engine.stats();
    assert_eq!(st.workers[0].drops.iter().find(|d| d.0 == "no_port").unwrap().1, 1);
    assert_eq!(st.workers[0].ports.exhausted, 1);
    // One connection resets; its port waits out the quarantine.
    r.client_sends(Seg::new("10.10.1.10:48000", "10.10.1.100:80").rst().seq(1001).frame(CLIENT_MAC, P0_MAC));
    r.advance(4 * S); // CLOSE: 3 s
    assert_eq!(r.engine.conns(false).len(), 1);
    let (_, y) =
        r.client_sends(Seg::new("10.10.1.10:48003", "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
    assert!(y.is_empty(), "the freed tuple is in quarantine");
    r.advance(60 * S);
    let (_, y) =
        r.client_sends(Seg::new("10.10.1.10:48004", "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
    assert_eq!(y.len(), 1, "after the quarantine");
    assert_eq!(endpoints(&y[0]).0, a, "the same LIP port, 60 s later");
}

#[test]
fn two_workers_own_their_port_slices_and_replies_reach_the_owner() {
    let mut r = rig_with(config(2, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)])), 4096);
    let mut per_worker = [0; 2];
    for n in 0..40u16 {
        let (lip, _) = open(&mut r, &format!("10.10.1.{}:{}", 10 + n % 5, 30000 + n));
        per_worker[usize::from(lip.port() & 1)] += 1;
    }
    let flows = r.engine.conns(false);
    assert_eq!(flows.len(), 40);
    for f in &flows {
        assert_eq!(f.worker, f.endpoints.lip.port() & 1, "lport & mask == worker");
        assert_eq!(f.state, "ESTABLISHED", "the reply found its connection");
    }
    assert!(per_worker[0] > 0 && per_worker[1] > 0, "both workers took connections: {per_worker:?}");
}

#[test]
fn removing_a_server_with_reset_cuts_its_connections() {
    let mut r =
        rig_with(config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("10.10.2.12:80", 1)])), 1024);
    let (lip, rs) = open(&mut r, "10.10.1.10:49000");
    r.engine.del_backend(&tcp_key(), rs, true).unwrap();
    r.settle();
    assert!(r.engine.conns(false).is_empty());
    assert_eq!(r.occupancy(), 0, "its flow left the NIC");
    // The client's next segment is answered with a reset from the VIP.
    let (to_client, to_server) = r.client_sends(
        Seg::new("10.10.1.10:49000", "10.10.1.100:80")
            .ack(1001)
            .seq(1001)
            .data(b"late")
            .frame(CLIENT_MAC, P0_MAC),
    );
    assert!(to_server.is_empty());
    assert_eq!(to_client.len(), 1);
    checksums(&to_client[0]).unwrap();
    let p = SlicedPacket::from_ethernet(&to_client[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
    assert!(t.rst(), "a reset");
    assert_eq!(t.sequence_number(), 1001, "at the client's ack");
    let _ = lip;
    // A server added at run time takes new connections.
    r.engine.add_backend(&tcp_key(), BackendConfig { addr: sa("10.10.2.12:8080"), weight: 1 }).unwrap();
    let mut seen = std::collections::HashSet::new();
    for n in 1..5u16 {
        seen.insert(open(&mut r, &format!("10.10.1.10:{}", 49000 + n)).1);
    }
    assert!(seen.contains(&sa("10.10.2.12:8080")));
}

#[test]
fn packets_with_bad_checksums_are_dropped_by_the_slow_path() {
    let mut r = rig();
    let mut f = Seg::new("10.10.1.10:50000", "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC);
    let n = f.len();
    f[n - 1] ^= 0xFF; // the last byte of the TCP header: its checksum no longer holds
    let (a, b) = r.client_sends(f);
    assert!(a.is_empty() && b.is_empty());
    assert!(r.engine.conns(false).is_empty());
    assert_eq!(r.engine.stats().workers[0].drops.iter().find(|d| d.0 == "bad_checksum").unwrap().1, 1);
}

#[test]
fn a_close_by_the_server_first_ends_after_last_ack() {
    let mut r = rig();
    let c = "10.10.1.10:51000";
    let (lip, rs) = open(&mut r, c);
    let (l, s) = (lip.to_string(), rs.to_string());
    r.server_sends(Seg::new(&s, &l).fin().ack(1001).seq(1001).frame(RS1_MAC, P1_MAC));
    assert_eq!(r.engine.conns(false)[0].state, "CLOSE_WAIT");
    r.client_sends(Seg::new(c, "10.10.1.100:80").fin().ack(1002).seq(1001).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.engine.conns(false)[0].state, "LAST_ACK");
    r.server_sends(Seg::new(&s, &l).ack(1002).seq(1002).frame(RS1_MAC, P1_MAC));
    // Time passes as it does live: in small steps, with polls between.
    for _ in 0..800 {
        r.advance(S / 100);
    }
    assert!(r.engine.conns(false).is_empty(), "LAST_ACK (7 s) expired: {:?}", r.engine.conns(false));
    assert_eq!(r.occupancy(), 0);
}

#[test]
fn workers_on_threads_give_the_same_bytes_as_workers_in_turn() {
    let run = |parallel: bool| {
        let mut cfg = config(2, services(SchedulerKind::Wrr, &[("10.10.2.11:80", 2), ("10.10.2.12:80", 1)]));
        cfg.parallel = parallel;
        let mut r = rig_with(cfg, 4096);
        let mut seen = Vec::new();
        for n in 0..30u16 {
            let c = format!("10.10.1.{}:{}", 10 + n % 3, 31000 + n);
            let (a, b) = r.client_sends(Seg::new(&c, "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
            let (lip, rs) = endpoints(&b[0]);
            let mac = if rs.ip() == ip("10.10.2.12") { RS2_MAC } else { RS1_MAC };
            let (c2, d) = r
                .server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1001).frame(mac, P1_MAC));
            let (e, f) = r.client_sends(
                Seg::new(&c, "10.10.1.100:80").ack(1001).seq(1001).data(b"req").frame(CLIENT_MAC, P0_MAC),
            );
            seen.extend([a, b, c2, d, e, f]);
        }
        r.advance(100 * S);
        (seen, r.engine.conns(false).len(), r.occupancy())
    };
    let (a, b) = (run(false), run(true));
    assert_eq!(a.1, 0, "everything aged out");
    assert_eq!(a, b, "the same frames, in the same order");
}

/// With workers on threads, a worker's thread is woken only for a round with packets for it:
/// an idle appliance polls often, and a wake-up and a wait per poll cost it a fifth of a core.
#[test]
fn an_idle_round_does_not_wake_the_worker_threads() {
    let mut r = rig_with(config(2, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)])), 4096);
    for _ in 0..50 {
        r.advance(1_000_000);
    }
    assert_eq!(r.engine.stats().device_side.thread_rounds, 0, "timers alone ran in place");
    // Clients until one lands on worker 1: that round is the thread's.
    for port in 40_000..40_064 {
        let src = format!("10.10.1.10:{port}");
        r.client_sends(Seg::new(&src, "10.10.1.100:80").syn().seq(1).frame(CLIENT_MAC, P0_MAC));
        if r.engine.stats().workers[1].created > 0 {
            break;
        }
    }
    assert!(r.engine.stats().workers[1].created > 0);
    assert!(r.engine.stats().device_side.thread_rounds > 0);
}
