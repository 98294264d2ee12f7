//! Tests of the cookies (round trip, forgery, expiry, options) and of the host path's sequence
//! translation (against the NIC model's, through the checksums).

use super::*;
use crate::packet::{self, L4};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SEC: u64 = 1_000_000_000;

#[test]
fn a_cookie_round_trips_for_two_periods_and_no_longer() {
    let c = SynCookies::default();
    let (client, vip) = (sa("192.0.2.7:40000"), sa("10.10.1.100:80"));
    let opts = SynOptions { mss: 1460, sack: true };
    let t0 = 1000 * SEC;
    let k = c.make(client, vip, 12345, opts, t0);
    assert_eq!(c.check(client, vip, 12345, k, t0), Some(opts));
    assert_eq!(c.check(client, vip, 12345, k, t0 + 70 * SEC), Some(opts), "next period");
    assert_eq!(c.check(client, vip, 12345, k, t0 + 140 * SEC), None, "two periods on");
    assert_eq!(c.check(client, vip, 12346, k, t0), None, "another ISN");
    assert_eq!(c.check(sa("192.0.2.8:40000"), vip, 12345, k, t0), None, "another client");
    assert_eq!(c.check(client, sa("10.10.1.100:81"), 12345, k, t0), None, "another VIP port");
    assert_eq!(SynCookies::default().check(client, vip, 12345, k, t0), None, "another key");
}

#[test]
fn guessed_cookies_are_refused() {
    let c = SynCookies::default();
    let (client, vip) = (sa("192.0.2.7:40000"), sa("10.10.1.100:80"));
    let t = 77 * PERIOD_NS + 5;
    let good = c.make(client, vip, 1, SynOptions { mss: 536, sack: false }, t);
    // Every cookie that differs from the right one in its MAC bits is refused.
    let accepted = (0..200_000u32).filter(|i| c.check(client, vip, 1, good ^ (i << 4), t).is_some()).count();
    assert_eq!(accepted, 1, "only the cookie itself");
}

#[test]
fn syn_options_are_read_and_rounded_down_to_the_table() {
    let o = |b: &[u8]| SynOptions::of_syn(b);
    assert_eq!(o(&[2, 4, 0x05, 0xb4, 4, 2, 1, 1]), SynOptions { mss: 1460, sack: true });
    assert_eq!(o(&[1, 1, 2, 4, 0x05, 0xa0]), SynOptions { mss: 1440, sack: false }, "1440 exact");
    assert_eq!(o(&[2, 4, 0x05, 0x9f]), SynOptions { mss: 1400, sack: false }, "1439 rounds down");
    assert_eq!(o(&[2, 4, 0x23, 0x28]), SynOptions { mss: 1460, sack: false }, "9000 to the largest");
    assert_eq!(o(&[2, 4, 0x01, 0x00]), SynOptions { mss: 536, sack: false }, "below the minimum");
    assert_eq!(o(&[]), SynOptions { mss: 536, sack: false }, "no options: RFC 9293's default");
    assert_eq!(o(&[2, 9, 1]), SynOptions { mss: 536, sack: false }, "a malformed list stops");
    for opts in MSS_TABLE.iter().flat_map(|&mss| [false, true].map(|sack| SynOptions { mss, sack })) {
        assert_eq!(SynOptions::of_syn(&opts.encode()), opts);
        assert_eq!(SynOptions::from_bits(opts.bits()), opts);
    }
}

#[test]
fn the_proxy_segments_are_well_formed() {
    let (client, vip) = (sa("192.0.2.7:40000"), sa("10.10.1.100:80"));
    let opts = SynOptions { mss: 1460, sack: true };
    let p = syn_ack(vip, client, 0xdead_beef, 99, &opts.encode());
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&p);
    let pkt = packet::parse(&frame).unwrap();
    assert!(packet::verify_checksums(&frame, &pkt));
    let L4::Tcp { sport, dport, flags, seq, ack, header_len } = pkt.l4 else { panic!("{pkt:?}") };
    assert_eq!((sport, dport, flags, seq, ack, header_len), (80, 40000, 0x12, 0xdead_beef, 100, 28));
}

/// Builds an IPv4 TCP packet with a SACK option and the given fields, checksummed (the PROXY
/// protocol's tests use it too).
pub(crate) fn tcp_with_sack(seq: u32, ack: u32, blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut opts = vec![1, 1, 5, (2 + 8 * blocks.len()) as u8];
    for (l, r) in blocks {
        opts.extend_from_slice(&l.to_be_bytes());
        opts.extend_from_slice(&r.to_be_bytes());
    }
    let mut seg = segment(1000, 80, seq, ack, 0x10, 500, &opts);
    seg.extend_from_slice(b"payload");
    crate::emit::ip_packet("10.1.0.1".parse().unwrap(), "10.2.0.7".parse().unwrap(), 6, 64, seg, 16)
}

/// The sequence number, acknowledgement and SACK option words of an IPv4 TCP packet.
pub(crate) fn fields(p: &[u8]) -> (u32, u32, Vec<u32>) {
    let seg = &p[20..];
    let word = |at: usize| u32::from_be_bytes(seg[at..at + 4].try_into().unwrap());
    let hl = usize::from(seg[12] >> 4) * 4;
    let sack = (24..hl).step_by(4).map(word).collect();
    (word(4), word(8), sack)
}

#[test]
fn the_translation_moves_seq_ack_and_sack_and_keeps_the_checksum_right() {
    let delta = 0x8000_0010u32;
    let t = Translation { seq: delta, ts: 0 };
    let mut from_client = tcp_with_sack(5, 100, &[(200, 300), (400, 500)]);
    adjust(&mut from_client, 20, false, t);
    let (seq, ack, sack) = fields(&from_client);
    assert_eq!(seq, 5, "the client's own numbers are the server's");
    assert_eq!(ack, 100u32.wrapping_sub(delta));
    assert_eq!(sack, [200, 300, 400, 500].map(|v: u32| v.wrapping_sub(delta)).to_vec());
    let mut from_server = tcp_with_sack(7, 9, &[]);
    adjust(&mut from_server, 20, true, t);
    assert_eq!(fields(&from_server).0, 7u32.wrapping_add(delta));
    assert_eq!(fields(&from_server).1, 9, "the server's ack is in the client's numbers already");
    for p in [&from_client, &from_server] {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(p);
        let pkt = packet::parse(&frame).unwrap();
        assert!(packet::verify_checksums(&frame, &pkt), "checksum after the translation");
    }
    let mut short = vec![0x45u8; 30];
    adjust(&mut short, 20, true, t);
    assert_eq!(short, vec![0x45u8; 30], "a packet too short to be TCP is left alone");
}

#[test]
fn syn_options_are_laid_out_as_linux_does_and_read_back() {
    let ts = Some((0x0102_0304, 0x0506_0708));
    for mss in [536, 1460] {
        for sack in [false, true] {
            for ts in [None, ts] {
                for wscale in [None, Some(0), Some(7), Some(14)] {
                    let opts = SynOptions { mss, sack };
                    let bytes = opts.encode_with(ts, wscale);
                    assert!(bytes.len() <= 20, "{bytes:?}");
                    assert_eq!(bytes.len() % 4, 0, "padded with NOPs: {bytes:?}");
                    assert_eq!(SynOptions::of_syn(&bytes), opts);
                    assert_eq!(Stamps::of(&bytes), Stamps { ts, wscale });
                }
            }
        }
    }
    // MSS, SACK-permitted, timestamps, NOP, window scale: what Linux sends in its SYN-ACKs.
    let linux = SynOptions { mss: 1460, sack: true }.encode_with(ts, Some(7));
    assert_eq!(linux, [2, 4, 5, 180, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7]);
}

#[test]
fn stamps_clamp_the_scale_and_skip_malformed_options() {
    assert_eq!(Stamps::of(&[3, 3, 15]).wscale, Some(MAX_WSCALE), "RFC 7323: above 14 is 14");
    assert_eq!(Stamps::of(&[8, 9, 0, 0, 0, 1, 0, 0, 0]).ts, None, "a timestamp option of 9 bytes");
    assert_eq!(Stamps::of(&[3, 4, 7, 0]).wscale, None, "a window scale option of 4 bytes");
    assert_eq!(Stamps::of(&[1, 8, 10, 0, 0, 0, 1]), Stamps::default(), "runs past the options");
    assert_eq!(Stamps::of(&[0, 3, 3, 7]), Stamps::default(), "after end of list");
}

#[test]
fn our_tsval_keeps_the_clients_window_scale() {
    let ms: u32 = 123_456_789;
    let now = u64::from(ms) * 1_000_000 + 999;
    for scale in (0..=MAX_WSCALE).map(Some).chain([None]) {
        let v = our_tsval(now, scale);
        assert_eq!(client_wscale(v), scale);
        assert_eq!(v >> 4, ms >> 4, "the rest is the clock in milliseconds");
    }
    assert_eq!(client_wscale(our_tsval(now, Some(200))), Some(MAX_WSCALE));
}

/// An IPv4 TCP packet with a SACK block and a timestamp option (TSval, TSecr), checksummed.
fn tcp_with_ts(seq: u32, ack: u32, tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut opts = vec![1, 1, 8, 10];
    opts.extend_from_slice(&tsval.to_be_bytes());
    opts.extend_from_slice(&tsecr.to_be_bytes());
    opts.extend_from_slice(&[1, 1, 5, 10, 0, 0, 0, 200, 0, 0, 1, 44]);
    let mut seg = segment(1000, 80, seq, ack, 0x10, 500, &opts);
    seg.extend_from_slice(b"data");
    crate::emit::ip_packet("10.1.0.1".parse().unwrap(), "10.2.0.7".parse().unwrap(), 6, 64, seg, 16)
}

fn checksums_hold(p: &[u8]) -> bool {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(p);
    let pkt = packet::parse(&frame).unwrap();
    packet::verify_checksums(&frame, &pkt)
}

#[test]
fn the_translation_moves_timestamps_both_ways_with_the_sequence() {
    let t = Translation { seq: 0x10, ts: 0xFFFF_FF00 };
    let stamps = |p: &[u8]| Stamps::of(&p[40..52]).ts.unwrap();
    // From the server: its TSval moves into the clock the client saw first; its TSecr echoes the
    // client's own clock and stays.
    let mut from_server = tcp_with_ts(7, 9, 0x0000_0200, 0xAAAA_AAAA);
    adjust(&mut from_server, 20, true, t);
    assert_eq!(stamps(&from_server), (0x0000_0100, 0xAAAA_AAAA), "TSval + delta, wrapping");
    assert_eq!(fields(&from_server).0, 0x17);
    // From the client: the TSecr it echoes (our clock) goes back to the server's.
    let mut from_client = tcp_with_ts(5, 100, 0xBBBB_BBBB, 0x0000_0100);
    adjust(&mut from_client, 20, false, t);
    assert_eq!(stamps(&from_client), (0xBBBB_BBBB, 0x0000_0200), "TSecr - delta, wrapping");
    let (seq, ack, words) = fields(&from_client);
    assert_eq!((seq, ack), (5, 100 - 0x10));
    assert_eq!(&words[2..], [0x0101_050A, 200 - 0x10, 300 - 0x10], "SACK edges still translated");
    assert!(checksums_hold(&from_server) && checksums_hold(&from_client));
    // A zero delta leaves timestamps as they are.
    let mut same = tcp_with_ts(5, 100, 1, 2);
    adjust(&mut same, 20, false, Translation { seq: 0, ts: 0 });
    assert_eq!(same, tcp_with_ts(5, 100, 1, 2));
}
