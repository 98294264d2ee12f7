//! Tests of the AF_PACKET port. The wire test builds a veth pair inside a network namespace of
//! its own, so it touches no interface of the host and sends nothing outside that namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// A locally administered EtherType-free marker: IEEE "local experimental" EtherType 1.
const ETHERTYPE_TEST: [u8; 2] = [0x88, 0xb5];

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
fn errors_name_the_operation_and_give_a_hint_for_privileges() {
    let err = os_error("bind to", "veth0", &io::Error::from_raw_os_error(libc::EPERM));
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    let msg = err.to_string();
    assert!(msg.starts_with("af_packet: bind to veth0: Operation not permitted"), "{msg}");
    assert!(msg.ends_with("(needs root or CAP_NET_RAW)"), "{msg}");
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace that is deleted when the guard goes, whatever happened in between.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Result<Self, String> {
        ip(&["netns", "add", &name])?;
        Ok(Self { name })
    }

    /// Runs `f` on a thread that entered this namespace. Sockets it opens stay in the namespace
    /// wherever they are used afterwards; the test's own thread never changes namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            // SAFETY: `ns` is an open namespace file; setns affects only this thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("could not delete the test namespace: {e}");
        }
    }
}

/// Polls `port` until a frame with the test EtherType (after an optional VLAN tag) arrives.
fn wait_for_test_frame(port: &mut AfPacketPort, marker: u8) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut frames = Vec::new();
    while Instant::now() < deadline {
        frames.clear();
        port.recv_batch(&mut frames, 32).unwrap();
        if let Some(f) =
            frames.drain(..).find(|f| f.data.len() > 20 && f.data.contains(&marker) && is_test_frame(&f.data))
        {
            assert_eq!(f.timestamp_ns, None);
            return Some(f.data);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn is_test_frame(data: &[u8]) -> bool {
    data[12..14] == ETHERTYPE_TEST || (data[12..14] == [0x81, 0x00] && data[16..18] == ETHERTYPE_TEST)
}

fn wait_link(port: &AfPacketPort, up: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if port.link_up() == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn frames_cross_a_veth_pair_in_a_private_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root to create a network namespace and raw sockets");
        return;
    }
    if ip(&["-V"]).is_err() {
        println!("skipped: the `ip` tool (iproute2) is not installed");
        return;
    }
    let ns = match Netns::create(format!("sluice-port-test-{}", std::process::id())) {
        Ok(ns) => ns,
        Err(e) => {
            println!("skipped: cannot create a network namespace here: {e}");
            return;
        }
    };
    let n = ns.name.clone();
    ip(&["-n", &n, "link", "add", "name", "spa", "type", "veth", "peer", "name", "spb"]).unwrap();
    ip(&["-n", &n, "link", "set", "spa", "up"]).unwrap();
    ip(&["-n", &n, "link", "set", "spb", "up"]).unwrap();

    let (mut a, mut b) = ns.run(|| (AfPacketPort::open("spa").unwrap(), AfPacketPort::open("spb").unwrap()));
    assert_eq!(a.describe(), "af_packet:spa");
    assert_eq!(a.ifname(), "spa");
    let (mac_a, mac_b) = (a.mac().unwrap(), b.mac().unwrap());
    assert_ne!(mac_a, mac_b);
    assert!(wait_link(&a, true) && wait_link(&b, true), "veth links come up");

    // Untagged frame a -> b, minimum size.
    let mut frame = Vec::new();
    frame.extend_from_slice(&mac_b);
    frame.extend_from_slice(&mac_a);
    frame.extend_from_slice(&ETHERTYPE_TEST);
    frame.extend_from_slice(&[0xa1; 46]);
    a.send(&frame).unwrap();
    assert_eq!(wait_for_test_frame(&mut b, 0xa1).as_deref(), Some(&frame[..]), "b receives a's frame whole");

    // A VLAN-tagged frame b -> a keeps its tag although the kernel strips it on receive.
    let mut tagged = Vec::new();
    tagged.extend_from_slice(&mac_a);
    tagged.extend_from_slice(&mac_b);
    tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x7b]); // PCP 1, VID 123
    tagged.extend_from_slice(&ETHERTYPE_TEST);
    tagged.extend_from_slice(&[0xb2; 46]);
    b.send(&tagged).unwrap();
    assert_eq!(wait_for_test_frame(&mut a, 0xb2).as_deref(), Some(&tagged[..]), "VLAN tag restored");

    // Neither end reads back its own sends.
    std::thread::sleep(Duration::from_millis(50));
    let mut rest = Vec::new();
    a.recv_batch(&mut rest, 1000).unwrap();
    b.recv_batch(&mut rest, 1000).unwrap();
    assert!(!rest.iter().any(|f| f.data == frame || f.data == tagged), "own sends are not received");

    // Pulling b down takes a's carrier with it.
    ip(&["-n", &n, "link", "set", "spb", "down"]).unwrap();
    assert!(wait_link(&b, false), "admin down");
    assert!(wait_link(&a, false), "peer down: no carrier");
    ip(&["-n", &n, "link", "set", "spb", "up"]).unwrap();
    assert!(wait_link(&a, true), "carrier back");

    // Once the interface is gone, sending fails with the interface named, and the link is down.
    ip(&["-n", &n, "link", "del", "spa"]).unwrap();
    let err = a.send(&frame).unwrap_err().to_string();
    assert!(err.starts_with("af_packet: send on spa:"), "{err}");
    assert!(!a.link_up());
    assert_eq!(a.mac(), None);
    drop((a, b));
    drop(ns);
}
