//! The SYN proxy through the in-process NIC: SYNs answered with cookies and no state, a bad
//! cookie refused, a good one opening the server side with the client's ISN, the client's
//! early data held and delivered after the server's SYN-ACK, and the sequence translation on
//! the host path and, once offloaded, in the NIC (the record's `seq_delta`).

use slowpath::sched::SchedulerKind;
use sluice_test_support::engine::*;
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::{checksums, endpoints, tcp_fields};

const VIP: &str = "10.10.1.100:80";
const CLIENT: &str = "10.10.1.10:41000";

fn proxy_rig() -> Rig {
    let mut services = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]);
    services[0].synproxy = true;
    rig_with(config(1, services), 1024)
}

/// (flags, seq, ack, payload) of a TCP frame whose checksums are right.
fn tcp(frame: &[u8]) -> (u8, u32, u32, Vec<u8>) {
    checksums(frame).expect("checksums");
    tcp_fields(frame).expect("a TCP frame")
}

#[test]
fn syns_get_cookies_and_no_state() {
    let mut r = proxy_rig();
    for n in 0..500u16 {
        let client = format!("10.10.1.10:{}", 1024 + n);
        let (to_client, to_server) =
            r.client_sends(Seg::new(&client, VIP).syn().seq(u32::from(n)).frame(CLIENT_MAC, P0_MAC));
        assert!(to_server.is_empty(), "nothing reaches a server for an unproven SYN");
        assert_eq!(to_client.len(), 1, "one SYN-ACK per SYN");
        let (flags, _, ack, _) = tcp(&to_client[0]);
        assert_eq!((flags, ack), (0x12, u32::from(n) + 1));
    }
    let s = r.engine.stats();
    assert_eq!(s.workers[0].current, 0, "no connection for unproven SYNs");
    assert_eq!(s.workers[0].half_open, 0);
    assert_eq!(s.workers[0].syn_cookies, 500);
    // An ACK whose cookie is wrong opens nothing.
    let (c, s) = r.client_sends(Seg::new(CLIENT, VIP).ack(12345).seq(1).frame(CLIENT_MAC, P0_MAC));
    assert!(c.is_empty() && s.is_empty());
    assert_eq!(r.drops("bad_cookie"), 1);
    assert_eq!(r.engine.stats().workers[0].current, 0);
}

#[test]
fn a_proven_client_is_proxied_with_its_data_held_then_translated_in_the_nic() {
    let mut r = proxy_rig();
    let (to_client, _) = r.client_sends(Seg::new(CLIENT, VIP).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    let (_, cookie, _, _) = tcp(&to_client[0]);

    // The ACK returns the cookie and carries the first data: the server side opens with the
    // client's ISN, the data is held.
    let ack = Seg::new(CLIENT, VIP).ack(cookie.wrapping_add(1)).seq(101).data(b"hello ");
    let (c, s) = r.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
    assert!(c.is_empty());
    assert_eq!(s.len(), 1, "a SYN to the server");
    let (flags, seq, _, _) = tcp(&s[0]);
    assert_eq!((flags, seq), (0x02, 100), "SYN with the client's ISN");
    let (lip, rs) = endpoints(&s[0]);
    let more = Seg::new(CLIENT, VIP).ack(cookie.wrapping_add(1)).seq(107).data(b"world");
    let (c, s) = r.client_sends(more.frame(CLIENT_MAC, P0_MAC));
    assert!(c.is_empty() && s.is_empty(), "held until the server answers");
    assert_eq!(r.engine.stats().workers[0].syn_cookies_accepted, 1);

    // The server answers: our ACK completes its side, then the held data goes, acknowledging
    // the server's ISN where the client acknowledged the cookie.
    let server_isn = 7_000_000u32;
    let (c, s) = r.server_sends(
        Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(101).seq(server_isn).frame(RS1_MAC, P1_MAC),
    );
    assert!(c.is_empty(), "the client already had its SYN-ACK");
    let got: Vec<_> = s.iter().map(|f| tcp(f)).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].0, got[0].1, got[0].2), (0x10, 101, server_isn + 1), "the proxy's ACK");
    assert_eq!((got[1].1, got[1].2, got[1].3.as_slice()), (101, server_isn + 1, &b"hello "[..]));
    assert_eq!((got[2].1, got[2].2, got[2].3.as_slice()), (107, server_isn + 1, &b"world"[..]));
    assert_eq!(r.occupancy(), 1, "offloaded once established");

    // The server's reply goes through the NIC: its sequence number is moved into the
    // client's view of our ISN (the cookie), and the checksum is right.
    let hits = r.nic_hits();
    let reply =
        Seg::new(&rs.to_string(), &lip.to_string()).ack(112).seq(server_isn + 1).data(b"HTTP/1.1 200");
    let (c, s) = r.server_sends(reply.frame(RS1_MAC, P1_MAC));
    assert!(s.is_empty());
    assert_eq!(r.nic_hits(), hits + 1, "forwarded by the NIC");
    let (_, seq, ack, payload) = tcp(&c[0]);
    assert_eq!((seq, ack, payload.as_slice()), (cookie.wrapping_add(1), 112, &b"HTTP/1.1 200"[..]));
    // And the client's acknowledgement is moved back into the server's.
    let client_ack = Seg::new(CLIENT, VIP).ack(cookie.wrapping_add(13)).seq(112);
    let (_, s) = r.client_sends(client_ack.frame(CLIENT_MAC, P0_MAC));
    let (_, seq, ack, _) = tcp(&s[0]);
    assert_eq!((seq, ack), (112, server_isn + 13));
    assert_eq!(r.engine.stats().workers[0].half_open, 0);
}

#[test]
fn a_server_that_refuses_resets_the_client_and_ends_the_connection() {
    let mut r = proxy_rig();
    let (to_client, _) = r.client_sends(Seg::new(CLIENT, VIP).syn().seq(5).frame(CLIENT_MAC, P0_MAC));
    let (_, cookie, _, _) = tcp(&to_client[0]);
    let (_, s) =
        r.client_sends(Seg::new(CLIENT, VIP).ack(cookie.wrapping_add(1)).seq(6).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    let (c, _) = r
        .server_sends(Seg::new(&rs.to_string(), &lip.to_string()).rst().ack(6).seq(0).frame(RS1_MAC, P1_MAC));
    let (flags, seq, _, _) = tcp(&c[0]);
    assert_eq!((flags & 0x04, seq), (0x04, cookie.wrapping_add(1)), "a reset in the client's numbers");
    assert_eq!(r.engine.stats().workers[0].current, 0);
}

/// A client that reuses its port while the proxied connection it had is still closing (in
/// TIME_WAIT here) gets a new cookie, and the new connection has its own translation: the old
/// one's would move every sequence number of the new connection by the wrong amount.
#[test]
fn a_port_reused_during_time_wait_is_proven_afresh_with_its_own_translation() {
    let mut r = proxy_rig();
    let rs_seg =
        |rs: std::net::SocketAddr, lip: std::net::SocketAddr| Seg::new(&rs.to_string(), &lip.to_string());
    // A first connection, opened and closed from both sides.
    let (c, _) = r.client_sends(Seg::new(CLIENT, VIP).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    let (_, cookie1, _, _) = tcp(&c[0]);
    let (_, s) =
        r.client_sends(Seg::new(CLIENT, VIP).ack(cookie1.wrapping_add(1)).seq(101).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    r.server_sends(rs_seg(rs, lip).syn().ack(101).seq(5000).frame(RS1_MAC, P1_MAC));
    r.client_sends(
        Seg::new(CLIENT, VIP).fin().ack(cookie1.wrapping_add(1)).seq(101).frame(CLIENT_MAC, P0_MAC),
    );
    r.server_sends(rs_seg(rs, lip).fin().ack(102).seq(5001).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(CLIENT, VIP).ack(cookie1.wrapping_add(2)).seq(102).frame(CLIENT_MAC, P0_MAC));

    // The same client port, a new SYN: a cookie again, nothing to the server yet.
    let (c, s) = r.client_sends(Seg::new(CLIENT, VIP).syn().seq(9000).frame(CLIENT_MAC, P0_MAC));
    assert!(s.is_empty(), "the new SYN is not forwarded on the old connection");
    let (flags, cookie2, ack, _) = tcp(&c[0]);
    assert_eq!((flags, ack), (0x12, 9001));
    let (_, s) = r
        .client_sends(Seg::new(CLIENT, VIP).ack(cookie2.wrapping_add(1)).seq(9001).frame(CLIENT_MAC, P0_MAC));
    let (flags, seq, _, _) = tcp(&s[0]);
    assert_eq!((flags, seq), (0x02, 9000), "a new SYN to the server with the new ISN");
    let (lip2, rs2) = endpoints(&s[0]);
    r.server_sends(rs_seg(rs2, lip2).syn().ack(9001).seq(70_000).frame(RS1_MAC, P1_MAC));
    let (c, _) = r.server_sends(rs_seg(rs2, lip2).ack(9001).seq(70_001).data(b"new").frame(RS1_MAC, P1_MAC));
    let (_, seq, _, payload) = tcp(&c[0]);
    assert_eq!((seq, payload.as_slice()), (cookie2.wrapping_add(1), &b"new"[..]), "the new translation");
}

/// What a proven client sends before its server answers is held up to 8 segments; more are
/// dropped and counted (`proxy_held`), and the client's TCP sends them again.
#[test]
fn early_data_is_held_up_to_its_bound() {
    let mut r = proxy_rig();
    let (c, _) = r.client_sends(Seg::new(CLIENT, VIP).syn().seq(0).frame(CLIENT_MAC, P0_MAC));
    let (_, cookie, _, _) = tcp(&c[0]);
    let ack = cookie.wrapping_add(1);
    let (_, s) = r.client_sends(Seg::new(CLIENT, VIP).ack(ack).seq(1).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    for n in 0..10u32 {
        let (c, s) = r.client_sends(
            Seg::new(CLIENT, VIP).ack(ack).seq(1 + 10 * n).data(b"0123456789").frame(CLIENT_MAC, P0_MAC),
        );
        assert!(c.is_empty() && s.is_empty());
    }
    assert_eq!(r.drops("proxy_held"), 2);
    let (_, s) = r.server_sends(
        Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1).seq(500).frame(RS1_MAC, P1_MAC),
    );
    assert_eq!(s.len(), 1 + 8, "the proxy's ACK and the 8 held segments");
}
