//! TOA through the in-process NIC: the client's address and port in option 254 of every client
//! segment the host path forwards until the server is established (none in the SYN), the flow
//! offloaded only then and forwarded by the NIC without the option, and a segment with no room
//! for it sent without it and counted.

use slowpath::proxy_protocol::ProxyProtocol;
use slowpath::sched::SchedulerKind;
use sluice_test_support::engine::*;
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::{checksums, endpoints, tcp_fields};

const VIP: &str = "10.10.1.100:80";
const CLIENT: &str = "10.10.1.10:41000";
/// Option 254, length 8, port 41000, 10.10.1.10.
const TOA: [u8; 8] = [254, 8, 0xA0, 0x28, 10, 10, 1, 10];

/// (flags, seq, ack, payload) of a TCP frame whose checksums are right.
fn tcp(frame: &[u8]) -> (u8, u32, u32, Vec<u8>) {
    checksums(frame).expect("checksums");
    tcp_fields(frame).expect("a TCP frame")
}

/// The TCP options of an Ethernet + IPv4 frame.
fn options(frame: &[u8]) -> Vec<u8> {
    let l4 = 14 + usize::from(frame[14] & 0x0F) * 4;
    let th = usize::from(frame[l4 + 12] >> 4) * 4;
    frame[l4 + 20..l4 + th].to_vec()
}

fn has_toa(frame: &[u8]) -> bool {
    options(frame).windows(8).any(|w| w == TOA)
}

#[test]
fn client_segments_carry_the_clients_address_until_the_server_is_established() {
    let mut services = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]);
    services[0].proxy_protocol = Some(ProxyProtocol::Toa);
    let mut r = rig_with(config(1, services), 1024);
    let (_, s) = r.client_sends(Seg::new(CLIENT, VIP).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert!(!has_toa(&s[0]), "not in the SYN");
    let (lip, rs) = endpoints(&s[0]);
    r.server_sends(Seg::between(rs, lip).syn().seq(5000).ack(101).frame(RS1_MAC, P1_MAC));

    // The handshake's ACK with data, then more data, then a full-size segment: each forwarded
    // by the host, the first two with the option, the last without (no room under the MTU).
    let (_, s) =
        r.client_sends(Seg::new(CLIENT, VIP).seq(101).ack(5001).data(b"GET ").frame(CLIENT_MAC, P0_MAC));
    assert!(has_toa(&s[0]), "{:?}", options(&s[0]));
    assert_eq!(tcp(&s[0]), (0x10, 101, 5001, b"GET ".to_vec()), "the segment otherwise unchanged");
    let (_, s) =
        r.client_sends(Seg::new(CLIENT, VIP).seq(105).ack(5001).data(b"/ HTTP").frame(CLIENT_MAC, P0_MAC));
    assert!(has_toa(&s[0]));
    let full = vec![b'x'; 1460];
    let (_, s) =
        r.client_sends(Seg::new(CLIENT, VIP).seq(111).ack(5001).data(&full).frame(CLIENT_MAC, P0_MAC));
    assert!(!has_toa(&s[0]), "no room for it");
    assert_eq!(tcp(&s[0]).3.len(), 1460);
    let w = &r.engine.stats().workers[0];
    assert_eq!((w.toa_inserted, w.toa_no_room), (2, 1));
    assert_eq!(r.occupancy(), 0, "not offloaded before the server is established");

    // The server's ACK shows it is established: offloaded, and the NIC forwards the client's
    // next segment without the option.
    let (c, _) = r.server_sends(Seg::between(rs, lip).seq(5001).ack(1571).frame(RS1_MAC, P1_MAC));
    assert_eq!(tcp(&c[0]).2, 1571, "no shift: the option adds no bytes to the stream");
    assert_eq!(r.occupancy(), 1);
    let hits = r.nic_hits();
    let (_, s) =
        r.client_sends(Seg::new(CLIENT, VIP).seq(1571).ack(5001).data(b"more").frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.nic_hits(), hits + 1);
    assert!(!has_toa(&s[0]));
    assert_eq!(r.engine.stats().workers[0].toa_inserted, 2);
}
