//! Tests of the AF_PACKET port. The wire test builds a veth pair inside a network namespace of
//! its own ([`super::super::test_netns`]), so it touches no interface of the host and sends
//! nothing outside that namespace.

use std::time::Duration;

use super::super::test_netns::{Netns, drain_test_frames, test_frame, wait_for_test_frame, wait_link};
use super::*;

#[test]
fn a_missing_interface_is_a_clear_error() {
    let err = AfPacketPort::open("sluicenx9").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(err.to_string(), "af_packet: no such interface \"sluicenx9\"");
    for bad in ["", "a-name-far-too-long-for-linux", "a/b", "nul\0"] {
        let err = AfPacketPort::open(bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(err.to_string().starts_with("af_packet: invalid interface name"), "{err}");
    }
}

#[test]
#[ignore = "needs root: a network namespace and packet sockets"]
fn frames_cross_a_veth_pair_in_a_private_namespace() {
    let ns = Netns::with_veth_pair("afp");
    let (mut a, mut b) = ns.run(|| (AfPacketPort::open("spa").unwrap(), AfPacketPort::open("spb").unwrap()));
    assert_eq!(a.describe(), "af_packet:spa");
    assert_eq!(a.ifname(), "spa");
    assert!(a.poll_fd().is_some());
    let (mac_a, mac_b) = (a.mac().unwrap(), b.mac().unwrap());
    assert_ne!(mac_a, mac_b);
    assert!(wait_link(&a, true) && wait_link(&b, true), "veth links come up");

    // Untagged frame a -> b, minimum size: queued by send, on the wire after flush.
    let frame = test_frame(mac_b, mac_a, None, 0xa1);
    a.send(&frame).unwrap();
    a.flush().unwrap();
    assert_eq!(wait_for_test_frame(&mut b, 0xa1).as_deref(), Some(&frame[..]), "b receives a's frame whole");

    // A VLAN-tagged frame b -> a keeps its tag although the kernel strips it on receive.
    let tagged = test_frame(mac_a, mac_b, Some([0x81, 0x00, 0x20, 0x7b]), 0xb2); // PCP 1, VID 123
    b.send(&tagged).unwrap();
    b.flush().unwrap();
    assert_eq!(wait_for_test_frame(&mut a, 0xb2).as_deref(), Some(&tagged[..]), "VLAN tag restored");

    // A burst: many frames queued, one flush, all arrive in order.
    let burst: Vec<Vec<u8>> = (0..100u8).map(|i| test_frame(mac_b, mac_a, None, i)).collect();
    for f in &burst {
        a.send(f).unwrap();
    }
    a.flush().unwrap();
    let got = drain_test_frames(&mut b, Duration::from_millis(300));
    assert_eq!(got, burst, "a burst arrives whole and in order");

    // Neither end reads back its own sends.
    let own = drain_test_frames(&mut a, Duration::from_millis(50));
    assert!(own.is_empty(), "own sends are not received: {}", own.len());

    // Pulling b down takes a's carrier with it.
    ns.ip(&["link", "set", "spb", "down"]).unwrap();
    assert!(wait_link(&b, false), "admin down");
    assert!(wait_link(&a, false), "peer down: no carrier");
    ns.ip(&["link", "set", "spb", "up"]).unwrap();
    assert!(wait_link(&a, true), "carrier back");

    // Once the interface is gone, sending fails with the interface named, and the link is down.
    ns.ip(&["link", "del", "spa"]).unwrap();
    let _ = a.send(&frame);
    let err = a.flush().unwrap_err().to_string();
    assert!(err.starts_with("af_packet: send on spa:"), "{err}");
    assert!(!a.link_up());
    assert_eq!(a.mac(), None);
    drop((a, b));
}

#[test]
#[ignore = "needs root: a network namespace"]
fn a_down_interface_is_refused_by_name() {
    let ns = Netns::with_veth_pair("afpdown");
    ns.ip(&["link", "set", "spa", "down"]).unwrap();
    let err = ns.run(|| AfPacketPort::open("spa").unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::NetworkDown);
    assert_eq!(err.to_string(), "af_packet: interface spa is down (ip link set spa up)");
}
