//! The SYN proxy's TCP options through the in-process NIC: a client that asks for timestamps
//! and window scaling gets them (the servers' scale from `synproxy_wscale`, its own kept in the
//! proxy's TSval), the server is opened with the client's options, a server that breaks the
//! promise is counted, and every packet's timestamps are translated between the two clocks:
//! on the host path and, once offloaded, in the NIC (the record's `ts_delta`).

use slowpath::sched::SchedulerKind;
use slowpath::synproxy::{self, Offer, Stamps, SynOptions};
use sluice_test_support::engine::*;
use sluice_test_support::verify::{checksums, endpoints, tcp_fields};
use std::net::SocketAddr;

const VIP: &str = "10.10.1.100:80";
const CLIENT: &str = "10.10.1.10:41000";
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn rig(offer: Offer) -> Rig {
    let mut services = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]);
    services[0].synproxy = true;
    services[0].synproxy_offer = offer;
    rig_with(config(1, services), 1024)
}

/// An Ethernet frame of a TCP segment with `options`, checksummed.
fn segment(
    (src, dst): (SocketAddr, SocketAddr),
    (seq, ack, flags): (u32, u32, u8),
    options: &[u8],
    payload: &[u8],
    (l2_src, l2_dst): ([u8; 6], [u8; 6]),
) -> Vec<u8> {
    let mut seg = synproxy::segment(src.port(), dst.port(), seq, ack, flags, 29200, options);
    seg.extend_from_slice(payload);
    let ip = slowpath::emit::ip_packet(src.ip(), dst.ip(), 6, 64, seg, 16);
    let mut frame = Vec::with_capacity(14 + ip.len());
    frame.extend_from_slice(&l2_dst);
    frame.extend_from_slice(&l2_src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame
}

/// A timestamp option alone, NOP-padded as Linux sends it on established segments.
fn ts(val: u32, ecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}

/// The option bytes of a TCP frame (IPv4, no IP options), its checksums verified.
fn options(frame: &[u8]) -> Vec<u8> {
    checksums(frame).expect("checksums");
    let tcp = &frame[14 + 20..];
    tcp[20..usize::from(tcp[12] >> 4) * 4].to_vec()
}

/// (flags, seq, ack) of a TCP frame.
fn head(frame: &[u8]) -> (u8, u32, u32) {
    let (flags, seq, ack, _) = tcp_fields(frame).expect("a TCP frame");
    (flags, seq, ack)
}

/// What a Linux client's SYN carries: MSS 1460, SACK-permitted, timestamps, window scale 10.
fn linux_syn(tsval: u32) -> Vec<u8> {
    SynOptions { mss: 1460, sack: true }.encode_with(Some((tsval, 0)), Some(10))
}

struct Opened {
    r: Rig,
    cookie: u32,
    our_tsval: u32,
    lip: SocketAddr,
    rs: SocketAddr,
}

/// A client handshake with Linux's options, up to the SYN the proxy sends the server.
fn open(offer: Offer, syn_options: &[u8]) -> (Opened, Vec<u8>, Vec<u8>) {
    let mut r = rig(offer);
    let (client, vip) = (CLIENT.parse().unwrap(), VIP.parse().unwrap());
    let (c, s) =
        r.client_sends(segment((client, vip), (100, 0, SYN), syn_options, &[], (CLIENT_MAC, P0_MAC)));
    assert!(s.is_empty());
    let syn_ack = options(&c[0]);
    let (flags, cookie, ack) = head(&c[0]);
    assert_eq!((flags, ack), (SYN | ACK, 101));
    let our_tsval = Stamps::of(&syn_ack).ts.map_or(0, |(val, _)| val);
    let echo = if Stamps::of(syn_ack.as_slice()).ts.is_some() { ts(1001, our_tsval) } else { Vec::new() };
    let (_, s) = r.client_sends(segment(
        (client, vip),
        (101, cookie.wrapping_add(1), ACK),
        &echo,
        &[],
        (CLIENT_MAC, P0_MAC),
    ));
    let (flags, seq, _) = head(&s[0]);
    assert_eq!((flags, seq), (SYN, 100), "the server is opened with the client's ISN");
    let syn = options(&s[0]);
    let (lip, rs) = endpoints(&s[0]);
    (Opened { r, cookie, our_tsval, lip, rs }, syn_ack, syn)
}

#[test]
fn a_linux_client_gets_timestamps_and_window_scaling_and_the_server_its_options() {
    let (o, syn_ack, syn) = open(Offer::default(), &linux_syn(1000));
    let promised = Stamps::of(&syn_ack);
    assert_eq!(SynOptions::of_syn(&syn_ack), SynOptions { mss: 1460, sack: true });
    assert_eq!(promised.wscale, Some(7), "the servers' scale, synproxy_wscale's default");
    assert_eq!(promised.ts.map(|(_, ecr)| ecr), Some(1000), "the client's TSval echoed");
    assert_eq!(synproxy::client_wscale(o.our_tsval), Some(10), "the client's scale kept in our TSval");
    // The SYN to the server carries the client's options, its TSval of the ACK included.
    assert_eq!(SynOptions::of_syn(&syn), SynOptions { mss: 1460, sack: true });
    assert_eq!(Stamps::of(&syn), Stamps { ts: Some((1001, 0)), wscale: Some(10) });
}

#[test]
fn timestamps_are_translated_on_the_host_path_and_in_the_nic() {
    let (mut o, _, _) = open(Offer::default(), &linux_syn(1000));
    let (client, vip): (SocketAddr, SocketAddr) = (CLIENT.parse().unwrap(), VIP.parse().unwrap());
    let server_ts = 0xFFFF_FF00u32;
    let server_isn = 7_000_000u32;
    let syn_ack = SynOptions { mss: 1460, sack: true }.encode_with(Some((server_ts, 1001)), Some(7));
    let (c, s) = o.r.server_sends(segment(
        (o.rs, o.lip),
        (server_isn, 101, SYN | ACK),
        &syn_ack,
        &[],
        (RS1_MAC, P1_MAC),
    ));
    assert!(c.is_empty());
    assert_eq!(head(&s[0]), (ACK, 101, server_isn + 1), "the proxy's ACK completes the server side");
    assert_eq!(Stamps::of(&options(&s[0])).ts, Some((1001, server_ts)), "with the client's TSval");
    assert_eq!(o.r.engine.stats().workers[0].synproxy_mismatch, 0, "the server kept the promise");

    // The server's first data, on the host path (it offloads the connection), then more through
    // the NIC: its TSval in our clock, its TSecr (the client's own clock) untouched.
    let hits = o.r.nic_hits();
    for (n, via_nic) in [(0u32, false), (1, true)] {
        let tsval = server_ts.wrapping_add(0x300 + n);
        let seq = server_isn + 1 + 4 * n;
        let data = segment((o.rs, o.lip), (seq, 101, ACK), &ts(tsval, 1001), b"HTTP", (RS1_MAC, P1_MAC));
        let (c, _) = o.r.server_sends(data);
        assert_eq!(o.r.nic_hits(), hits + u64::from(via_nic), "through the NIC: {via_nic}");
        assert_eq!(head(&c[0]).1, o.cookie.wrapping_add(1 + 4 * n));
        assert_eq!(Stamps::of(&options(&c[0])).ts, Some((o.our_tsval.wrapping_add(0x300 + n), 1001)));
        assert_eq!(o.r.occupancy(), 1, "offloaded from the first data on");
    }
    // The client's acknowledgement: its TSecr (our clock) back in the server's.
    let back = segment(
        (client, vip),
        (101, o.cookie.wrapping_add(5), ACK),
        &ts(1002, o.our_tsval.wrapping_add(0x300)),
        &[],
        (CLIENT_MAC, P0_MAC),
    );
    let (_, s) = o.r.client_sends(back);
    assert_eq!(o.r.nic_hits(), hits + 2, "through the NIC");
    assert_eq!(head(&s[0]).2, server_isn + 5);
    assert_eq!(Stamps::of(&options(&s[0])).ts, Some((1002, server_ts.wrapping_add(0x300))));
}

#[test]
fn a_server_that_answers_otherwise_is_counted() {
    for (server_options, why) in [
        (SynOptions { mss: 1460, sack: true }.encode_with(Some((9, 1001)), Some(6)), "a smaller scale"),
        (SynOptions { mss: 1460, sack: true }.encode_with(Some((9, 1001)), None), "no window scaling"),
        (SynOptions { mss: 1460, sack: true }.encode_with(None, Some(7)), "no timestamps"),
    ] {
        let (mut o, _, _) = open(Offer::default(), &linux_syn(1000));
        let (_, s) = o.r.server_sends(segment(
            (o.rs, o.lip),
            (5, 101, SYN | ACK),
            &server_options,
            &[],
            (RS1_MAC, P1_MAC),
        ));
        assert_eq!(head(&s[0]).0, ACK, "{why}: the connection goes on");
        assert_eq!(o.r.engine.stats().workers[0].synproxy_mismatch, 1, "{why}");
    }
}

#[test]
fn a_server_with_a_larger_scale_is_not_a_mismatch() {
    let (mut o, _, _) = open(Offer::default(), &linux_syn(1000));
    let options = SynOptions { mss: 1460, sack: true }.encode_with(Some((9, 1001)), Some(10));
    o.r.server_sends(segment((o.rs, o.lip), (5, 101, SYN | ACK), &options, &[], (RS1_MAC, P1_MAC)));
    assert_eq!(o.r.engine.stats().workers[0].synproxy_mismatch, 0, "clients see smaller windows: safe");
}

#[test]
fn without_timestamps_neither_option_is_offered() {
    // The service turns them off.
    let off = Offer { timestamps: false, wscale: 7 };
    let (_, syn_ack, syn) = open(off, &linux_syn(1000));
    assert_eq!(Stamps::of(&syn_ack), Stamps::default());
    assert_eq!(Stamps::of(&syn), Stamps::default());
    assert_eq!(SynOptions::of_syn(&syn), SynOptions { mss: 1460, sack: true });
    // A client without timestamps has nowhere to keep its scale: no window scaling either.
    let no_ts = SynOptions { mss: 1460, sack: true }.encode_with(None, Some(10));
    let (_, syn_ack, syn) = open(Offer::default(), &no_ts);
    assert_eq!(Stamps::of(&syn_ack), Stamps::default());
    assert_eq!(Stamps::of(&syn), Stamps::default());
}
