//! The option's bytes, its insertion (offsets, lengths, checksums) and the refusals.

use super::*;
use crate::packet::{self, L4};

fn frame_of(ip: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(if ip[0] >> 4 == 6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    frame.extend_from_slice(ip);
    frame
}

fn segment(options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut seg = crate::synproxy::segment(5000, 80, 101, 51, 0x18, 500, options);
    seg.extend_from_slice(payload);
    crate::emit::ip_packet("10.10.2.1".parse().unwrap(), "10.10.2.11".parse().unwrap(), 6, 63, seg, 16)
}

#[test]
fn the_option_is_kind_254_length_8_port_then_address() {
    assert_eq!(option("192.0.2.7:40000".parse().unwrap()), [254, 8, 0x9C, 0x40, 192, 0, 2, 7]);
}

#[test]
fn the_option_goes_after_the_segments_own_and_everything_follows() {
    let ts = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 9];
    let mut p = segment(&ts, b"GET /");
    let before = p.len();
    insert(&mut p, "192.0.2.7:40000".parse().unwrap(), 1500).unwrap();
    assert_eq!(p.len(), before + 8);
    let frame = frame_of(&p);
    let pkt = packet::parse(&frame).unwrap();
    assert!(packet::verify_checksums(&frame, &pkt), "both checksums right");
    let L4::Tcp { seq, ack, header_len, .. } = pkt.l4 else { panic!("{pkt:?}") };
    assert_eq!((seq, ack, header_len), (101, 51, 40));
    let ip = pkt.ip().unwrap();
    assert_eq!(ip.end - ip.l4, 40 + 5, "the IP length grew by the option");
    assert_eq!(&frame[ip.l4 + 20..ip.l4 + 32], &ts, "the segment's own options first");
    assert_eq!(&frame[ip.l4 + 32..ip.l4 + 40], &[254, 8, 0x9C, 0x40, 192, 0, 2, 7]);
    assert_eq!(&frame[ip.l4 + 40..ip.end], b"GET /", "the payload after");
}

#[test]
fn no_room_leaves_the_packet_as_it_was() {
    let client = "192.0.2.7:40000".parse().unwrap();
    // 36 bytes of options: 56 + 8 would pass the 60-byte header.
    let mut full = segment(&[1; 36], b"x");
    let copy = full.clone();
    assert_eq!(insert(&mut full, client, 1500), Err(Refused::NoRoom));
    assert_eq!(full, copy);
    // A packet at the MTU.
    let mut big = segment(&[], &[7; 1460]);
    assert_eq!(big.len(), 1500);
    let copy = big.clone();
    assert_eq!(insert(&mut big, client, 1500), Err(Refused::NoRoom));
    assert_eq!(big, copy);
    assert_eq!(insert(&mut big, client, 9000), Ok(()), "fits a larger MTU");
    // Not IPv4 TCP.
    let mut v6 = crate::emit::ip_packet(
        "fd00::1".parse().unwrap(),
        "fd00::2".parse().unwrap(),
        6,
        64,
        crate::synproxy::segment(1, 2, 3, 4, 0x10, 5, &[]),
        16,
    );
    assert_eq!(insert(&mut v6, client, 1500), Err(Refused::NotTcp4));
    let mut short = vec![0x45, 0, 0, 10];
    assert_eq!(insert(&mut short, client, 1500), Err(Refused::NotTcp4));
}
