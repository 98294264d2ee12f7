//! The host's own interface on a port: a TAP device carrying the port's addresses, so the
//! kernel answers for them and its sockets (health checks, management, BGP) use the port, as
//! DPVS's KNI does. Frames the slow path receives for a port address are written to the TAP;
//! what the kernel writes to it goes out of the port.
//!
//! The TAP is created with `TUNSETIFF` on `/dev/net/tun` (non-persistent: it disappears when the
//! daemon exits); its MAC, MTU, state and addresses are set with iproute2, which the appliance
//! has anyway.

use crate::config::Cidr;
use slowpath::engine::HostPort;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

const TUNSETIFF: libc::c_ulong = 0x4004_54CA;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// A TAP interface.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
    /// Where reads land, kept between calls: a fresh zeroed 64 KiB per poll round was a memset
    /// the daemon paid on every round, frames or not.
    read_buf: Box<[u8]>,
}

impl Tap {
    /// Creates TAP `name` with `mac`, `mtu` and `addresses`, up.
    pub fn create(name: &str, mac: [u8; 6], mtu: u16, addresses: &[Cidr]) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("interface name {name:?}")));
        }
        // SAFETY: a C string literal; the returned descriptor is checked before use.
        let raw = unsafe {
            libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI, pad: [0; 22] };
        for (d, s) in req.name.iter_mut().zip(name.bytes()) {
            *d = libc::c_char::from_ne_bytes([s]);
        }
        // SAFETY: TUNSETIFF reads and writes an `ifreq`; `req` is a properly sized, initialised one
        // that lives for the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &raw mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mac_s = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        ip(&["link", "set", "dev", name, "address", &mac_s, "mtu", &mtu.to_string(), "up"])?;
        for a in addresses {
            let cidr = a.to_string();
            if a.addr.is_ipv6() {
                ip(&["-6", "addr", "replace", &cidr, "dev", name, "nodad"])?;
            } else {
                ip(&["addr", "replace", &cidr, "dev", name])?;
            }
        }
        Ok(Tap { fd, name: name.to_string(), read_buf: vec![0u8; 65536].into_boxed_slice() })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor, readable when a frame from the host waits (for an idle loop's `poll`).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl HostPort for Tap {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a valid slice for the call; the descriptor is ours.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn recv(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> io::Result<usize> {
        let mut got = 0;
        let buf = &mut self.read_buf;
        while got < max {
            // SAFETY: `buf` is writable for its whole length during the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return Err(e);
            }
            out.push(buf[..n.unsigned_abs()].to_vec());
            got += 1;
        }
        Ok(got)
    }
}
