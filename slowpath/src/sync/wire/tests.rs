use super::*;
use crate::conn::TcpState;
use crate::sync::tests::event;

/// A datagram of one record, byte by byte: node 7, sequence 9; a SYN-proxied ESTABLISHED TCP
/// connection 10.0.0.1:4000 → 10.99.0.1:80 through 10.10.2.1:2048 to 10.10.2.11:80, 90 s left,
/// timestamps translated by 0x01020304.
#[rustfmt::skip]
static DATAGRAM: [u8; 16 + 92] = [
    0x53, 0x4c, 0x53, 0x59, 2, 92, 0, 1, 0, 0, 0, 7, 0, 0, 0, 9,
    1, 6, 4, 2, 1, 0, 0, 0, 0x00, 0x01, 0x5f, 0x90, 0xde, 0xad, 0xbe, 0xef,
    10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    10, 99, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    10, 10, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    10, 10, 2, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x0f, 0xa0, 0, 80, 0x08, 0x00, 0, 80,
    1, 2, 3, 4,
];

fn proxied() -> SyncEvent {
    SyncEvent { seq_delta: Some(0xdead_beef), ts_delta: 0x0102_0304, ..event(4000) }
}

#[test]
fn the_format_is_the_one_documented() {
    let mut out = Vec::new();
    encode(7, 9, &[proxied()], &mut out);
    assert_eq!(out, DATAGRAM);
    assert_eq!(HEADER_LEN, 16);
    assert_eq!(RECORD_LEN, 92);
    assert_eq!(decode(&DATAGRAM), Ok(Datagram { node: 7, seq: 9, events: vec![proxied()] }));
}

#[test]
fn version_one_datagrams_are_still_read_and_others_refused() {
    // The same record as version 1 wrote it: 88 bytes, no timestamp delta.
    let mut v1 = DATAGRAM[..16 + 88].to_vec();
    v1[4..6].copy_from_slice(&[1, 88]);
    let want = SyncEvent { ts_delta: 0, ..proxied() };
    assert_eq!(decode(&v1), Ok(Datagram { node: 7, seq: 9, events: vec![want] }));
    for (version, size) in [(1, 92), (2, 88), (3, 92), (3, 96)] {
        let mut bad = DATAGRAM.to_vec();
        bad[4..6].copy_from_slice(&[version, size]);
        assert_eq!(decode(&bad), Err(BadDatagram::Version), "version {version}, size {size}");
    }
    // A version 1 header over version 2's records is a length that does not match.
    let mut mixed = DATAGRAM.to_vec();
    mixed[4..6].copy_from_slice(&[1, 88]);
    assert_eq!(decode(&mixed), Err(BadDatagram::Length));
}

#[test]
fn events_round_trip_v4_v6_udp_and_every_kind() {
    let mut v6 = event(1);
    v6.ep.client = "[fd00::1]:5000".parse().unwrap();
    v6.ep.vip = "[fd99::1]:443".parse().unwrap();
    v6.ep.lip = "[fd10::1]:3000".parse().unwrap();
    v6.ep.rs = "[fd10::11]:443".parse().unwrap();
    let udp = SyncEvent {
        kind: SyncKind::Ended,
        proto: Proto::Udp,
        state: State::Udp { replied: true },
        ..event(2)
    };
    let changed = SyncEvent { kind: SyncKind::Changed, state: State::Tcp(TcpState::FinWait), ..event(3) };
    let events = vec![v6, udp, changed, proxied()];
    let mut out = Vec::new();
    encode(1, u32::MAX, &events, &mut out);
    assert_eq!(out.len(), HEADER_LEN + 4 * RECORD_LEN);
    assert_eq!(decode(&out), Ok(Datagram { node: 1, seq: u32::MAX, events }));
    // An empty datagram is a heartbeat.
    encode(1, 0, &[], &mut out);
    assert_eq!(decode(&out).map(|d| d.events.len()), Ok(0));
}

#[test]
fn at_most_fifteen_records_are_written() {
    let events: Vec<_> = (0..20).map(event).collect();
    let mut out = Vec::new();
    encode(1, 1, &events, &mut out);
    let d = decode(&out).unwrap();
    assert_eq!(d.events, events[..MAX_RECORDS]);
    assert!(out.len() <= 1400);
}

#[test]
fn bad_datagrams_are_refused_with_a_reason() {
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = DATAGRAM.to_vec();
        f(&mut d);
        decode(&d).unwrap_err()
    };
    assert_eq!(decode(&[]), Err(BadDatagram::Length));
    assert_eq!(decode(&DATAGRAM[..15]), Err(BadDatagram::Length));
    assert_eq!(bad(&|d| d.truncate(16 + 91)), BadDatagram::Length);
    assert_eq!(bad(&|d| d.push(0)), BadDatagram::Length);
    assert_eq!(bad(&|d| d[7] = 2), BadDatagram::Length, "count says two, one follows");
    assert_eq!(bad(&|d| d[6] = 0xff), BadDatagram::Length, "count beyond the maximum");
    assert_eq!(bad(&|d| d[0] = b'X'), BadDatagram::Magic);
    assert_eq!(bad(&|d| d[4] = 3), BadDatagram::Version);
    assert_eq!(bad(&|d| d[5] = 96), BadDatagram::Version);
    assert_eq!(bad(&|d| d[16] = 0), BadDatagram::Record, "kind");
    assert_eq!(bad(&|d| d[16] = 4), BadDatagram::Record, "kind");
    assert_eq!(bad(&|d| d[17] = 1), BadDatagram::Record, "protocol");
    assert_eq!(bad(&|d| d[18] = 5), BadDatagram::Record, "family");
    assert_eq!(bad(&|d| d[19] = 99), BadDatagram::Record, "state");
    assert_eq!(bad(&|d| d[19] = 17), BadDatagram::Record, "a UDP state on TCP");
    assert_eq!(bad(&|d| d[20] = 2), BadDatagram::Record, "unknown flag");
}

proptest::proptest! {
    /// Any bytes at all: a datagram or a reason, never a panic.
    #[test]
    fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400)) {
        let _ = decode(&bytes);
    }

    /// A real header over random records: every one that decodes encodes back to its bytes
    /// except the unused fields (delta without its flag, reserved, an IPv4 address's tail).
    #[test]
    fn mutated_datagrams_decode_or_are_refused(flip in 0usize..104, to in proptest::prelude::any::<u8>()) {
        let mut d = DATAGRAM.to_vec();
        d[flip] = to;
        if let Ok(g) = decode(&d) {
            let mut again = Vec::new();
            encode(g.node, g.seq, &g.events, &mut again);
            proptest::prop_assert_eq!(decode(&again), Ok(g));
        }
    }
}
