//! The header's bytes against the specification's layout, the segment that carries it, the
//! sequence arithmetic across the 2^32 wrap, and the server-first record round trip.

use super::*;
use crate::packet::{self, L4};
use crate::synproxy::tests::{fields, tcp_with_sack as tcp};
use rtl_spec::formats::FlowTuple;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A frame (zero MACs, IPv4 or IPv6 ethertype) around an IP packet.
fn frame_of(ip: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(if ip[0] >> 4 == 6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    frame.extend_from_slice(ip);
    frame
}

#[test]
fn the_ipv4_header_is_the_specifications_layout() {
    let h = v2_header(sa("192.0.2.7:40000"), sa("10.10.1.100:80"));
    #[rustfmt::skip]
    let expected: [u8; 28] = [
        // signature: \r \n \r \n \0 \r \n Q U I T \n
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21,       // version 2, PROXY
        0x11,       // AF_INET, STREAM
        0x00, 0x0C, // 12 bytes of addresses
        192, 0, 2, 7,       // source: the client
        10, 10, 1, 100,     // destination: the VIP
        0x9C, 0x40,         // 40000
        0x00, 0x50,         // 80
    ];
    assert_eq!(h, expected);
    assert_eq!(header_len(false), 28);
}

#[test]
fn the_ipv6_header_is_the_specifications_layout() {
    let h = v2_header(sa("[2001:db8::7]:443"), sa("[fd00:10::100]:8443"));
    let mut expected = SIGNATURE.to_vec();
    expected.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[15] = 7;
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&[0xfd, 0x00, 0x00, 0x10]);
    dst[14..].copy_from_slice(&[0x01, 0x00]);
    expected.extend_from_slice(&src);
    expected.extend_from_slice(&dst);
    expected.extend_from_slice(&[0x01, 0xBB, 0x20, 0xFB]);
    assert_eq!(h, expected);
    assert_eq!(h.len() as u32, header_len(true));
    assert_eq!(header_len(true), 52);
}

#[test]
fn the_header_segment_is_well_formed_and_carries_the_header() {
    for (client, vip, lip, rs) in [
        ("192.0.2.7:40000", "10.10.1.100:80", "10.10.2.1:5000", "10.10.2.11:80"),
        ("[2001:db8::7]:40000", "[fd00:1::100]:80", "[fd00:2::1]:5000", "[fd00:2::11]:80"),
    ] {
        let header = v2_header(sa(client), sa(vip));
        let ts = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 9];
        let p = header_segment(sa(lip), sa(rs), (u32::MAX, 77, 501), &ts, &header);
        let frame = frame_of(&p);
        let pkt = packet::parse(&frame).unwrap();
        assert!(packet::verify_checksums(&frame, &pkt), "{client}");
        let L4::Tcp { sport, dport, flags, seq, ack, header_len } = pkt.l4 else { panic!("{pkt:?}") };
        assert_eq!((sport, dport, flags, seq, ack, header_len), (5000, 80, 0x18, u32::MAX, 77, 32));
        let ip = pkt.ip().unwrap();
        assert_eq!(&frame[ip.l4 + 20..ip.l4 + 32], &ts, "the client's options");
        assert_eq!(&frame[ip.l4 + 32..ip.end], &header[..]);
    }
}

#[test]
fn sequence_comparison_wraps() {
    assert!(seq_ge(5, 5));
    assert!(seq_ge(6, 5));
    assert!(!seq_ge(4, 5));
    assert!(seq_ge(3, u32::MAX - 10), "past the wrap is after");
    assert!(!seq_ge(u32::MAX - 10, 3));
    // The header's end when the client's ISN is just below the wrap.
    let isn = u32::MAX - 5;
    let end = isn.wrapping_add(1).wrapping_add(28);
    assert_eq!(end, 23);
    assert!(seq_ge(end, isn.wrapping_add(1)));
    assert!(!seq_ge(isn.wrapping_add(1), end));
}

#[test]
fn the_shift_moves_the_clients_seq_and_the_servers_ack_and_sack_across_the_wrap() {
    let h = 28;
    // The client's bytes straddle the wrap: seq just below 2^32 lands just past 0.
    let mut from_client = tcp(u32::MAX - 9, 1234, &[(50, 60)]);
    shift(&mut from_client, 20, true, h);
    let (seq, ack, sack) = fields(&from_client);
    assert_eq!(seq, 18, "u32::MAX - 9 + 28 wraps to 18");
    assert_eq!((ack, sack), (1234, vec![50, 60]), "the client's acks are in the server's numbers");
    // The server acknowledges (and SACKs) client bytes past the wrap; the client sees its own.
    let mut from_server = tcp(1234, 18, &[(20, 30), (40, 50)]);
    shift(&mut from_server, 20, false, h);
    let (seq, ack, sack) = fields(&from_server);
    assert_eq!(seq, 1234);
    assert_eq!(ack, u32::MAX - 9);
    assert_eq!(sack, vec![u32::MAX - 7, 2, 12, 22]);
    for p in [&from_client, &from_server] {
        let frame = frame_of(p);
        let pkt = packet::parse(&frame).unwrap();
        assert!(packet::verify_checksums(&frame, &pkt), "checksum after the shift");
    }
}

fn tuple(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> FlowTuple {
    let mut t = FlowTuple::default();
    t.src_addr[..4].copy_from_slice(&src);
    t.dst_addr[..4].copy_from_slice(&dst);
    t.src_port = sport.into();
    t.dst_port = dport.into();
    t
}

#[test]
fn a_server_first_flow_round_trips_and_its_counters_read_back_the_host_way() {
    let flow = Flow {
        orig: tuple([192, 0, 2, 7], 40000, [10, 10, 1, 100], 80),
        reply: tuple([10, 10, 2, 11], 80, [10, 10, 2, 1], 5000),
        proto: 6,
        ipv6: false,
        next_hop_orig: 3,
        next_hop_reply: 4,
        idle_timeout: 900,
        cookie: 17,
        host_state: 2,
        counter_set: 9,
        seq_delta: None,
        ts_delta: 0,
    };
    let hashes = FlowHashes {
        orig: rtl_spec::hash::Seeds::default().key_hash(&flow.key(false)),
        reply: rtl_spec::hash::Seeds::default().key_hash(&flow.key(true)),
    };
    let (nic, nic_hashes) = server_first(flow, hashes, 28);
    assert_eq!((nic.orig, nic.reply), (flow.reply, flow.orig));
    assert_eq!((nic.next_hop_orig, nic.next_hop_reply), (4, 3), "toward the client for the server's packets");
    assert_eq!((nic_hashes.orig, nic_hashes.reply), (hashes.reply, hashes.orig));
    assert_eq!(nic.host_state, 2 | SERVER_FIRST);
    assert_eq!(nic.seq_delta, Some(28));
    let (back, was) = client_first(nic);
    assert!(was);
    assert_eq!(back, Flow { seq_delta: Some(28), ..flow });
    assert_eq!(client_first(flow), (flow, false), "an ordinary flow is left as it is");
    let k = FlowCounters { packets: [1, 2], bytes: [3, 4], tcp_flags: [5, 6], idle_ms: 7 };
    assert_eq!(
        swap_counters(k),
        FlowCounters { packets: [2, 1], bytes: [4, 3], tcp_flags: [6, 5], idle_ms: 7 }
    );
}
