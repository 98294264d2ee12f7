//! PROXY protocol v2 through the in-process NIC: the server-side stream starts with the header,
//! the client's bytes follow it shifted by its length on the host path and, once the server has
//! acknowledged the header and the flow is offloaded, in the NIC (the server-first record's
//! `seq_delta`); the server's acknowledgements come back shifted the other way; the header is
//! sent again while it is not acknowledged, and a server that never acknowledges it ends the
//! connection. IPv4 with the client's ISN just below 2^32, and IPv6.

use slowpath::proxy_protocol::{ProxyProtocol, v2_header};
use slowpath::sched::SchedulerKind;
use sluice_test_support::engine::*;
use sluice_test_support::frame::{Seg, sa};
use sluice_test_support::verify::{checksums, endpoints, tcp_fields};
use std::net::SocketAddr;

/// (flags, seq, ack, payload) of a TCP frame whose checksums are right.
fn tcp(frame: &[u8]) -> (u8, u32, u32, Vec<u8>) {
    checksums(frame).expect("checksums");
    tcp_fields(frame).expect("a TCP frame")
}

fn pp_rig() -> Rig {
    let mut services = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("[fd00:2::11]:80", 1)]);
    for s in &mut services {
        if s.key.proto == slowpath::service::Proto::Tcp {
            s.proxy_protocol = Some(ProxyProtocol::V2);
        }
    }
    rig_with(config(1, services), 1024)
}

/// A connection through its handshake up to the client's first data (which the ACK carries).
/// Returns (LIP, server) and the frames the server received for the client's ACK.
fn open(
    r: &mut Rig,
    client: &str,
    vip: &str,
    isn: u32,
    server_isn: u32,
    data: &[u8],
) -> ((SocketAddr, SocketAddr), Vec<Vec<u8>>) {
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(isn).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(s.len(), 1, "the SYN reaches the server");
    let (flags, seq, _, _) = tcp(&s[0]);
    assert_eq!((flags, seq), (0x02, isn), "the SYN is not shifted");
    let (lip, rs) = endpoints(&s[0]);
    let syn_ack = Seg::between(rs, lip).syn().seq(server_isn).ack(isn.wrapping_add(1));
    let (c, _) = r.server_sends(syn_ack.frame(RS1_MAC, P1_MAC));
    let (flags, seq, ack, _) = tcp(&c[0]);
    assert_eq!((flags, seq, ack), (0x12, server_isn, isn.wrapping_add(1)), "the SYN-ACK is not shifted");
    let ack = Seg::new(client, vip).seq(isn.wrapping_add(1)).ack(server_isn.wrapping_add(1)).data(data);
    let (c, s) = r.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
    assert!(c.is_empty());
    ((lip, rs), s)
}

/// The whole life of one connection: header first, host-path shift, offload once acknowledged,
/// NIC shift both ways, counters the host's way round, and a restart that adopts the flow.
fn header_then_shift(client: &str, vip: &str, h: u32) {
    let mut r = pp_rig();
    let isn = u32::MAX - 10;
    let server_isn = 7_000_000u32;
    let ((lip, rs), s) = open(&mut r, client, vip, isn, server_isn, b"GET / HTTP/1.1\r\n");
    let got: Vec<_> = s.iter().map(|f| tcp(f)).collect();
    assert_eq!(got.len(), 2, "the header, then the client's segment: {got:?}");
    let header = v2_header(sa(client), sa(vip));
    assert_eq!(header.len() as u32, h);
    assert_eq!(
        got[0],
        (0x10, isn.wrapping_add(1), server_isn + 1, header),
        "the header, at the client's ISN + 1"
    );
    let data_seq = isn.wrapping_add(1).wrapping_add(h);
    assert_eq!(got[1], (0x10, data_seq, server_isn + 1, b"GET / HTTP/1.1\r\n".to_vec()), "the data after it");
    assert_eq!(r.occupancy(), 0, "not offloaded before the server has the header");
    assert_eq!(r.engine.stats().workers[0].pp_headers, 1);

    // More client data before the server's ACK: shifted on the host path.
    let more = Seg::new(client, vip).seq(isn.wrapping_add(17)).ack(server_isn + 1).data(b"\r\n");
    let (_, s) = r.client_sends(more.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(tcp(&s[0]).1, isn.wrapping_add(17).wrapping_add(h));

    // The server acknowledges everything (header and 18 bytes): the client sees its own bytes
    // acknowledged, and the flow is offloaded.
    let server_ack = data_seq.wrapping_add(18);
    let (c, _) =
        r.server_sends(Seg::between(rs, lip).seq(server_isn + 1).ack(server_ack).frame(RS1_MAC, P1_MAC));
    assert_eq!(tcp(&c[0]).2, isn.wrapping_add(19), "the server's ACK less the header");
    assert_eq!(r.occupancy(), 1, "offloaded once the header is acknowledged");

    // In the NIC: two client segments, one server segment, each shifted.
    let hits = r.nic_hits();
    for (k, chunk) in [&b"abc"[..], b"defg"].iter().enumerate() {
        let seq = isn.wrapping_add(19).wrapping_add(3 * k as u32);
        let seg = Seg::new(client, vip).seq(seq).ack(server_isn + 1).data(chunk);
        let (c, s) = r.client_sends(seg.frame(CLIENT_MAC, P0_MAC));
        assert!(c.is_empty());
        let (_, got_seq, got_ack, payload) = tcp(&s[0]);
        assert_eq!((got_seq, got_ack, payload.as_slice()), (seq.wrapping_add(h), server_isn + 1, *chunk));
    }
    let reply =
        Seg::between(rs, lip).seq(server_isn + 1).ack(server_ack.wrapping_add(7)).data(b"HTTP/1.1 200 OK");
    let (c, s) = r.server_sends(reply.frame(RS1_MAC, P1_MAC));
    assert!(s.is_empty());
    let (_, seq, ack, payload) = tcp(&c[0]);
    assert_eq!(
        (seq, ack, payload.as_slice()),
        (server_isn + 1, isn.wrapping_add(26), &b"HTTP/1.1 200 OK"[..])
    );
    assert_eq!(r.nic_hits(), hits + 3, "all three forwarded by the NIC");

    // The listing reads the server-first record's counters the host's way round: packets
    // from the client first. The host path forwarded 3 client packets (SYN, ACK, more data)
    // and 2 server ones (SYN-ACK, ACK); the NIC 2 and 1.
    let conns = r.engine.conns(true);
    assert_eq!(conns[0].packets, [3 + 2, 2 + 1], "{:?}", conns[0]);

    // A restart adopts the flow with its shift: the NIC goes on shifting, and a FIN (punted
    // and forwarded by the host) is shifted by the new daemon's host path too.
    let (mut r, adopted) = r.restart();
    assert_eq!(adopted, 1);
    let seg = Seg::new(client, vip).seq(isn.wrapping_add(26)).ack(server_isn + 16).data(b"x");
    let (_, s) = r.client_sends(seg.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(tcp(&s[0]).1, isn.wrapping_add(26).wrapping_add(h), "the NIC's shift after the restart");
    let fin = Seg::new(client, vip).fin().seq(isn.wrapping_add(27)).ack(server_isn + 16);
    let (_, s) = r.client_sends(fin.frame(CLIENT_MAC, P0_MAC));
    let (flags, seq, _, _) = tcp(&s[0]);
    assert_eq!((flags & 0x01, seq), (0x01, isn.wrapping_add(27).wrapping_add(h)), "the host path's shift");
    let conns = r.engine.conns(true);
    assert_eq!(conns[0].endpoints.client, sa(client), "adopted the client's way round");
}

#[test]
fn an_ipv4_stream_starts_with_the_header_and_is_shifted_across_the_wrap() {
    header_then_shift("10.10.1.10:41000", "10.10.1.100:80", 28);
}

#[test]
fn an_ipv6_stream_starts_with_the_header_and_is_shifted() {
    header_then_shift("[fd00:1::10]:41000", "[fd00:1::100]:80", 52);
}

#[test]
fn a_lost_header_is_sent_again_and_a_server_that_never_acknowledges_it_ends_the_connection() {
    let mut r = pp_rig();
    let (client, vip) = ("10.10.1.10:42000", "10.10.1.100:80");
    let ((lip, rs), s) = open(&mut r, client, vip, 500, 9000, b"");
    assert_eq!(s.len(), 2, "the header and the client's (shifted) ACK");
    assert_eq!(tcp(&s[1]).1, 501 + 28);
    // The server acknowledges only its SYN-ACK's sequence (the header never arrived).
    let (c, _) = r.server_sends(Seg::between(rs, lip).seq(9001).ack(501).frame(RS1_MAC, P1_MAC));
    // Shifted like any server ACK: below the client's ISN + 1, an old ACK the client ignores.
    assert_eq!(tcp(&c[0]).2, 501u32.wrapping_sub(28));
    assert_eq!(r.occupancy(), 0);
    // The retransmission timer sends it again (200 ms, then doubling).
    r.advance(250_000_000);
    let s = r.p1.take_tx();
    assert_eq!(s.len(), 1, "the header again");
    assert_eq!(tcp(&s[0]).3, v2_header(sa(client), sa(vip)));
    assert_eq!(tcp(&s[0]).1, 501);
    assert_eq!(r.engine.stats().workers[0].pp_retransmits, 1);
    // Never acknowledged: after six sends the connection ends and the client is reset.
    for _ in 0..8 {
        r.advance(7 * S);
    }
    assert_eq!(r.engine.stats().workers[0].pp_retransmits, 5);
    assert_eq!(r.drops("proxy_protocol_unacked"), 1);
    assert_eq!(r.engine.stats().workers[0].current, 0);
    let _ = r.p1.take_tx();
    let (c, _) =
        r.client_sends(Seg::new(client, vip).seq(529).ack(9001).data(b"hi").frame(CLIENT_MAC, P0_MAC));
    assert_eq!(tcp(&c[0]).0 & 0x04, 0x04, "a reset for the client");
}

#[test]
fn a_header_acknowledged_at_once_lets_the_flow_go_to_the_nic_with_no_retransmission() {
    let mut r = pp_rig();
    let (client, vip) = ("10.10.1.10:43000", "10.10.1.100:80");
    let ((lip, rs), _) = open(&mut r, client, vip, 1, 2, b"");
    r.server_sends(Seg::between(rs, lip).seq(3).ack(2 + 28).frame(RS1_MAC, P1_MAC));
    assert_eq!(r.occupancy(), 1);
    r.advance(2 * S);
    assert!(r.p1.take_tx().is_empty(), "nothing sent again");
    assert_eq!(r.engine.stats().workers[0].pp_retransmits, 0);
}

#[test]
fn a_repeated_syn_opens_nothing_new_and_a_port_reused_after_close_gets_a_header_of_its_own() {
    let mut r = pp_rig();
    let (client, vip) = ("10.10.1.10:44000", "10.10.1.100:80");
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    let first = endpoints(&s[0]);
    // The client's SYN again (its retransmission): the same server-side tuple, one connection.
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]), first);
    assert_eq!(r.engine.stats().workers[0].current, 1);
    let (lip, rs) = first;
    r.server_sends(Seg::between(rs, lip).syn().seq(50).ack(101).frame(RS1_MAC, P1_MAC));
    let (_, s) = r.client_sends(Seg::new(client, vip).seq(101).ack(51).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(s.len(), 2, "header and ACK");
    r.server_sends(Seg::between(rs, lip).seq(51).ack(101 + 28).frame(RS1_MAC, P1_MAC));
    assert_eq!(r.occupancy(), 1);
    // Both sides close; the client reuses its port with a new ISN while the old connection is
    // in TIME_WAIT: a new connection, whose stream starts with its own header.
    r.client_sends(Seg::new(client, vip).fin().seq(101).ack(51).frame(CLIENT_MAC, P0_MAC));
    r.server_sends(Seg::between(rs, lip).fin().seq(51).ack(102 + 28).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(client, vip).seq(102).ack(52).frame(CLIENT_MAC, P0_MAC));
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(90_000).frame(CLIENT_MAC, P0_MAC));
    let (flags, seq, _, _) = tcp(&s[0]);
    assert_eq!((flags, seq), (0x02, 90_000), "the new SYN is not shifted");
    let (lip, rs) = endpoints(&s[0]);
    r.server_sends(Seg::between(rs, lip).syn().seq(7).ack(90_001).frame(RS1_MAC, P1_MAC));
    let (_, s) =
        r.client_sends(Seg::new(client, vip).seq(90_001).ack(8).data(b"hi").frame(CLIENT_MAC, P0_MAC));
    let got: Vec<_> = s.iter().map(|f| tcp(f)).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].1, got[0].3.clone()), (90_001, v2_header(sa(client), sa(vip))));
    assert_eq!((got[1].1, got[1].3.as_slice()), (90_001 + 28, &b"hi"[..]));
    assert_eq!(r.engine.stats().workers[0].pp_headers, 2);
}
