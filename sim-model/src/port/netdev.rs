//! What the interface ports ask of a Linux interface: its index, flags, MAC, MTU and receive
//! queues, through `SIOCGIF*`/`SIOCETHTOOL` ioctls on a datagram socket of their own.
//!
//! The socket is made in the calling thread's network namespace, so the answers are that
//! namespace's (sysfs would answer for the namespace /sys was mounted in, which is not the
//! interface's when a port is opened from a thread that entered another one). The link state
//! is sampled: the datapath asks for every frame it sends, and an ioctl per frame was a third
//! of the wire's system calls; a PHY is sampled every few milliseconds too.

use std::cell::Cell;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// How long a sampled link state holds.
const LINK_SAMPLE: Duration = Duration::from_millis(10);

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// One interface, as the ports see it.
#[derive(Debug)]
pub struct NetDev {
    ifname: String,
    ifindex: u32,
    /// The port kind in messages: "af_packet", "af_xdp".
    who: &'static str,
    ctl: OwnedFd,
    /// The last sample: when (coarse monotonic nanoseconds) and the state.
    link: Cell<Option<(u64, bool)>>,
}

/// The context of an error: `{who}: {op} {ifname}: {err}`, with a hint about privileges.
pub fn os_error(who: &str, op: &str, ifname: &str, err: &io::Error) -> io::Error {
    let hint = match (err.kind(), who) {
        (io::ErrorKind::PermissionDenied, "af_xdp") => {
            " (needs root, or CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF)"
        }
        (io::ErrorKind::PermissionDenied, _) => " (needs root or CAP_NET_RAW)",
        _ => "",
    };
    io::Error::new(err.kind(), format!("{who}: {op} {ifname}: {err}{hint}"))
}

/// An `ifreq` naming `ifname`, which `NetDev::open` checked is shorter than IFNAMSIZ.
fn ifreq_for(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name array and a union of integers, sockaddrs and a
    // pointer); all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    req
}

impl NetDev {
    /// Looks `ifname` up in the calling thread's namespace and checks it is an Ethernet
    /// interface that is administratively up. Errors name `who` and the interface:
    /// `InvalidInput` for a bad name or a non-Ethernet interface, `NotFound` for none,
    /// `NetworkDown` for one that is down.
    pub fn open(who: &'static str, ifname: &str) -> io::Result<Self> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains(['\0', '/']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{who}: invalid interface name {ifname:?}"),
            ));
        }
        let cname = CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{who}: no such interface {ifname:?}"),
            ));
        }
        // A datagram socket needs no privilege: the ioctls below work for anyone.
        // SAFETY: plain system call with constant arguments.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_error(who, "socket for", ifname, &io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let ctl = unsafe { OwnedFd::from_raw_fd(raw) };
        let dev = Self { ifname: ifname.to_owned(), ifindex, who, ctl, link: Cell::new(None) };
        let hatype = dev.hw_addr().map_err(|e| os_error(who, "hardware address of", ifname, &e))?.sa_family;
        if hatype != libc::ARPHRD_ETHER && hatype != libc::ARPHRD_LOOPBACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{who}: {ifname} is not an Ethernet interface (hardware type {hatype})"),
            ));
        }
        let flags = dev.flags().map_err(|e| os_error(who, "flags of", ifname, &e))?;
        if flags & libc::IFF_UP == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NetworkDown,
                format!("{who}: interface {ifname} is down (ip link set {ifname} up)"),
            ));
        }
        Ok(dev)
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.ifname
    }

    /// Its index in its namespace.
    pub fn index(&self) -> u32 {
        self.ifindex
    }

    /// Runs an `SIOCGIF*` request for the interface.
    fn ioctl(&self, request: libc::c_ulong) -> io::Result<libc::ifreq> {
        let mut req = ifreq_for(&self.ifname);
        // SAFETY: `req` is a live, NUL-terminated ifreq; SIOCGIF* requests write only inside it.
        let rc = unsafe { libc::ioctl(self.ctl.as_raw_fd(), request as _, &raw mut req) };
        if rc == 0 { Ok(req) } else { Err(io::Error::last_os_error()) }
    }

    fn hw_addr(&self) -> io::Result<libc::sockaddr> {
        let req = self.ioctl(libc::SIOCGIFHWADDR)?;
        // SAFETY: SIOCGIFHWADDR fills the `ifru_hwaddr` member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_hwaddr })
    }

    fn flags(&self) -> io::Result<libc::c_int> {
        let req = self.ioctl(libc::SIOCGIFFLAGS)?;
        // SAFETY: SIOCGIFFLAGS fills the `ifru_flags` member of the union.
        Ok(libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags }))
    }

    /// The MTU.
    pub fn mtu(&self) -> io::Result<u32> {
        let req = self.ioctl(libc::SIOCGIFMTU)?;
        // SAFETY: SIOCGIFMTU fills the `ifru_mtu` member of the union.
        Ok(u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).unwrap_or(0))
    }

    /// The MAC address; `None` for loopback (an all-zero placeholder) or a vanished interface.
    pub fn mac(&self) -> Option<[u8; 6]> {
        let addr = self.hw_addr().ok()?;
        if addr.sa_family != libc::ARPHRD_ETHER {
            return None;
        }
        let mut mac = [0u8; 6];
        for (dst, src) in mac.iter_mut().zip(addr.sa_data) {
            *dst = u8::from_ne_bytes(src.to_ne_bytes());
        }
        Some(mac)
    }

    /// How many receive queues the driver says it runs (ethtool's channels), if it says.
    pub fn rx_queues(&self) -> Option<u32> {
        let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..EthtoolChannels::default() };
        let mut req = ifreq_for(&self.ifname);
        req.ifr_ifru.ifru_data = (&raw mut ch).cast();
        // SAFETY: SIOCETHTOOL reads the ifreq and writes the ethtool_channels it points to;
        // both live for the call.
        let rc = unsafe { libc::ioctl(self.ctl.as_raw_fd(), SIOCETHTOOL as _, &raw mut req) };
        // Drivers count separate rx channels or combined ones (veth reports both, equal).
        (rc == 0).then(|| ch.rx_count.max(ch.combined_count)).filter(|&n| n > 0)
    }

    /// Reads the link state: administratively up and operationally up (carrier present).
    fn read_link(&self) -> bool {
        self.flags().is_ok_and(|f| f & libc::IFF_UP != 0 && f & libc::IFF_RUNNING != 0)
    }

    /// The link state, sampled every few milliseconds.
    ///
    /// The datapath asks for every frame it sends, so the age of the sample is read from the
    /// coarse monotonic clock (the kernel's last tick, a few ns to read) rather than the precise
    /// one (tens of ns on a VM's clock source: 0.5-0.8% of the daemon under load, perf): a
    /// sampling period of milliseconds does not need nanoseconds.
    pub fn link_up(&self) -> bool {
        let Some(now) = coarse_now_ns() else { return self.read_link() };
        if let Some((at, up)) = self.link.get() {
            if now.wrapping_sub(at) < LINK_SAMPLE.as_nanos() as u64 {
                return up;
            }
        }
        let up = self.read_link();
        self.link.set(Some((now, up)));
        up
    }

    /// Forgets the sampled link state (after a send failed: look again next time).
    pub fn forget_link(&self) {
        self.link.set(None);
    }

    /// The error context for this interface.
    pub fn error(&self, op: &str, err: &io::Error) -> io::Error {
        os_error(self.who, op, &self.ifname, err)
    }
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds; `None` if the clock cannot be read (then the link
/// is read on every call).
fn coarse_now_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec the call writes.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) } != 0 {
        return None;
    }
    // A monotonic clock's seconds and nanoseconds are never negative.
    let (secs, nanos) = (u64::try_from(ts.tv_sec).ok()?, u64::try_from(ts.tv_nsec).ok()?);
    Some(secs.wrapping_mul(1_000_000_000).wrapping_add(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_else() {
        let err = NetDev::open("af_xdp", "sluicenx9").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), "af_xdp: no such interface \"sluicenx9\"");
        for bad in ["", "a-name-far-too-long-for-linux", "a/b", "nul\0"] {
            let err = NetDev::open("af_packet", bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn loopback_answers_without_privileges() {
        let lo = NetDev::open("af_packet", "lo").unwrap();
        assert_eq!(lo.name(), "lo");
        assert!(lo.index() > 0);
        assert_eq!(lo.mac(), None, "loopback has no MAC");
        assert!(lo.mtu().unwrap() >= 1500);
        assert!(lo.link_up());
    }

    /// A sample younger than [`LINK_SAMPLE`] answers; an older one is read again (loopback is
    /// up, whatever the planted sample says).
    #[test]
    fn the_link_sample_is_kept_then_read_again() {
        let lo = NetDev::open("af_packet", "lo").unwrap();
        // Planted and asked within LINK_SAMPLE, unless this thread was descheduled for longer
        // between the two (a loaded machine): a few tries make that moot.
        let fresh_answers = (0..5).any(|_| {
            lo.link.set(Some((coarse_now_ns().unwrap(), false)));
            !lo.link_up()
        });
        assert!(fresh_answers, "a fresh sample is the answer");
        let now = coarse_now_ns().unwrap();
        lo.link.set(Some((now - 2 * LINK_SAMPLE.as_nanos() as u64, false)));
        assert!(lo.link_up(), "a stale sample is read again");
        lo.link.set(Some((now, false)));
        lo.forget_link();
        assert!(lo.link_up(), "a forgotten sample is read again");
    }

    #[test]
    fn privilege_errors_carry_a_hint() {
        let e = os_error("af_xdp", "bind to", "veth0", &io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().ends_with("CAP_BPF)"), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }
}
