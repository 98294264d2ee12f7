//! For the interface ports' tests: a network namespace of their own with a veth pair in it,
//! so they touch no interface of the host and send nothing outside that namespace. The
//! namespace is deleted when the guard goes, whatever happened in between.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Port, RxBurst};

/// A locally administered EtherType-free marker: IEEE "local experimental" EtherType 1.
pub const ETHERTYPE_TEST: [u8; 2] = [0x88, 0xb5];

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace holding the veth pair `spa`–`spb`, both up.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// The namespace. The tests that call it are `#[ignore = "needs root: …"]`; run where it
    /// cannot be made (not root, no iproute2) they fail saying why rather than pass untested.
    /// `SLUICE_NS_TAG` keeps two checkouts' runs apart.
    pub fn with_veth_pair(test: &str) -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root, "needs root to create a network namespace (run by scripts/test-all as root)");
        assert!(
            ip(&["-V"]).is_ok(),
            "the `ip` tool (iproute2) is not installed (scripts/test-all installs it)"
        );
        let tag = std::env::var("SLUICE_NS_TAG").unwrap_or_default();
        let name = format!("sluice-{test}{tag}-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!("cannot create a network namespace here: {e}");
        }
        let ns = Self { name };
        let n = ns.name.clone();
        ip(&["-n", &n, "link", "add", "name", "spa", "type", "veth", "peer", "name", "spb"]).unwrap();
        ip(&["-n", &n, "link", "set", "spa", "up"]).unwrap();
        ip(&["-n", &n, "link", "set", "spb", "up"]).unwrap();
        ns
    }

    /// `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a thread that entered this namespace. Sockets it opens stay in the namespace
    /// wherever they are used afterwards; the test's own thread never changes namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
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

/// A test frame: `dst`, `src`, an optional 802.1Q tag, the test EtherType, 46 bytes of `fill`.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], vlan: Option<[u8; 4]>, fill: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(tag) = vlan {
        f.extend_from_slice(&tag);
    }
    f.extend_from_slice(&ETHERTYPE_TEST);
    f.extend_from_slice(&[fill; 46]);
    f
}

fn is_test_frame(data: &[u8]) -> bool {
    data.len() > 20
        && (data[12..14] == ETHERTYPE_TEST
            || (data[12..14] == [0x81, 0x00] && data[16..18] == ETHERTYPE_TEST))
}

/// Polls `port` until a test frame ending in `fill` arrives (3 s at most).
pub fn wait_for_test_frame(port: &mut dyn Port, fill: u8) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut burst = RxBurst::default();
    while Instant::now() < deadline {
        burst.clear();
        port.recv_burst(&mut burst, 32).unwrap();
        if let Some(f) = burst.iter().find(|f| is_test_frame(f.data) && f.data.last() == Some(&fill)) {
            assert_eq!(f.timestamp_ns, None);
            return Some(f.data.to_vec());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Every test frame `port` receives within `wait`.
pub fn drain_test_frames(port: &mut dyn Port, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut burst = RxBurst::default();
    let mut out = Vec::new();
    while Instant::now() < deadline {
        burst.clear();
        port.recv_burst(&mut burst, 32).unwrap();
        out.extend(burst.iter().filter(|f| is_test_frame(f.data)).map(|f| f.data.to_vec()));
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

/// Waits (5 s at most) for `port`'s link to be `up`.
pub fn wait_link(port: &dyn Port, up: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if port.link_up() == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
