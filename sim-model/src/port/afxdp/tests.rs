//! Tests of the AF_XDP port, on a veth pair in a network namespace of its own
//! ([`super::super::test_netns`]): nothing of the host is touched.

use std::time::Duration;

use super::super::AfPacketPort;
use super::super::test_netns::{Netns, drain_test_frames, test_frame, wait_for_test_frame, wait_link};
use super::*;

#[test]
fn a_missing_interface_is_a_clear_error() {
    let err = AfXdpPort::open("sluicenx9", 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(err.to_string(), "af_xdp: no such interface \"sluicenx9\"");
}

#[test]
#[ignore = "needs root: a network namespace, BPF and AF_XDP sockets"]
fn frames_cross_a_veth_pair_natively_and_the_program_goes_with_the_port() {
    let ns = Netns::with_veth_pair("xdp");
    // The XDP end on spa, an AF_PACKET end on spb, as a client's kernel would be.
    let (mut a, mut b) = ns.run(|| (AfXdpPort::open("spa", 0).unwrap(), AfPacketPort::open("spb").unwrap()));
    assert_eq!(a.mode(), XdpMode::Native, "veth runs XDP in its driver");
    assert_eq!(a.describe(), "af_xdp:spa native q0");
    assert_eq!((a.ifname(), a.queue()), ("spa", 0));
    assert!(a.poll_fd().is_some());
    assert!(ns.ip(&["link", "show", "spa"]).unwrap().contains("xdp"), "the program is attached");
    let (mac_a, mac_b) = (a.mac().unwrap(), b.mac().unwrap());
    assert!(wait_link(&a, true) && wait_link(&b, true), "veth links come up");

    // b -> a: the XDP program redirects it to the socket.
    let frame = test_frame(mac_a, mac_b, None, 0xa1);
    b.send(&frame).unwrap();
    b.flush().unwrap();
    assert_eq!(wait_for_test_frame(&mut a, 0xa1).as_deref(), Some(&frame[..]), "a receives b's frame whole");

    // a -> b, tagged: XDP sees the frame as it was on the wire, tag included, and sends it so.
    let tagged = test_frame(mac_b, mac_a, Some([0x81, 0x00, 0x20, 0x7b]), 0xb2);
    a.send(&tagged).unwrap();
    a.flush().unwrap();
    assert_eq!(wait_for_test_frame(&mut b, 0xb2).as_deref(), Some(&tagged[..]), "b receives a's frame whole");

    // Bursts larger than the kernel's 32-frame copy-mode batch, both ways, more than once
    // around the rings.
    for round in 0..8u8 {
        let burst: Vec<Vec<u8>> = (0..200u8).map(|i| test_frame(mac_b, mac_a, None, i)).collect();
        for f in &burst {
            a.send(f).unwrap();
        }
        a.flush().unwrap();
        assert_eq!(drain_test_frames(&mut b, Duration::from_millis(300)), burst, "round {round}: a -> b");
        let back: Vec<Vec<u8>> = (0..100u8).map(|i| test_frame(mac_a, mac_b, None, i)).collect();
        for f in &back {
            b.send(f).unwrap();
        }
        b.flush().unwrap();
        assert_eq!(drain_test_frames(&mut a, Duration::from_millis(300)), back, "round {round}: b -> a");
    }
    assert_eq!(a.dropped_frames(), 0);
    let mut two = vec![0u8; MAX_FRAME + 1];
    two[..12].copy_from_slice(&frame[..12]);
    assert_eq!(a.send(&two).unwrap_err().kind(), io::ErrorKind::InvalidInput, "too long for a UMEM frame");

    // Dropping the port detaches the program: the kernel has the interface back.
    drop(a);
    assert!(!ns.ip(&["link", "show", "spa"]).unwrap().contains("xdp"), "the program is detached");
    drop(b);
}

#[test]
#[ignore = "needs root: a network namespace, BPF and AF_XDP sockets"]
fn bad_settings_are_refused_by_name() {
    let ns = Netns::with_veth_pair("xdpbad");
    let err = ns.run(|| AfXdpPort::open("spa", 5).unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.to_string(), "af_xdp: spa has no receive queue 5 (it has 1: 0..=0)");
    ns.ip(&["link", "set", "spa", "down"]).unwrap();
    let err = ns.run(|| AfXdpPort::open("spa", 0).unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::NetworkDown, "{err}");
    ns.ip(&["link", "set", "spa", "up"]).unwrap();
    // An MTU too large for a UMEM frame: AF_XDP is unsupported here, so `auto` falls back.
    ns.ip(&["link", "set", "spa", "mtu", "9000"]).unwrap();
    let err = ns.run(|| AfXdpPort::open("spa", 0).unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("MTU 9000"), "{err}");
    let port = ns.run(|| super::super::open_interface("p0", "spa", super::super::PortKind::Auto, 0).unwrap());
    assert_eq!(port.describe(), "af_packet:spa", "auto fell back");
}

#[test]
#[ignore = "needs root: a network namespace, BPF and AF_XDP sockets"]
fn generic_mode_where_the_driver_has_none() {
    let ns = Netns::with_veth_pair("xdpgen");
    // A bridge has no native XDP: the program goes in generic mode.
    ns.ip(&["link", "add", "br9", "type", "bridge"]).unwrap();
    ns.ip(&["link", "set", "br9", "up"]).unwrap();
    let port = ns.run(|| AfXdpPort::open("br9", 0).unwrap());
    assert_eq!(port.mode(), XdpMode::Generic);
    assert_eq!(port.describe(), "af_xdp:br9 generic q0");
}
