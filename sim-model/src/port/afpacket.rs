//! The AF_PACKET port: the model's wire is a Linux network interface.
//!
//! This module owns [`AfPacketPort`], a raw `AF_PACKET`/`SOCK_RAW` socket bound to one interface
//! (a veth, a TAP or a real NIC). It sees every frame the interface receives and sends frames as
//! they are, so the model can sit on one end of a veth pair as if it were the NIC on a wire.
//!
//! What the port expects of the interface: **offloads off**. The kernel hands packet sockets
//! frames as its stack sees them: with GRO a "frame" can be 64 KiB of coalesced segments, and
//! with checksum offload (a veth's default) the TCP/UDP checksum of a locally sent frame is
//! left partial, to be completed by hardware that does not exist here. The project's test
//! topologies therefore run `ethtool -K IF rx off tx off sg off tso off gso off gro off` on
//! every interface a port is attached to (design.md, "Test topologies"); the port does not
//! repair such artifacts.
//!
//! VLAN tags: Linux strips the 802.1Q tag of a received frame before packet sockets see it and
//! hands it over as metadata, so the port asks for `PACKET_AUXDATA` and puts the tag back:
//! frames come out as they were on the wire.
//!
//! Frames received carry no timestamp (`None`): the model stamps them with its own clock.
//! Sending never blocks: a full socket send queue is `ErrorKind::WouldBlock`, i.e. a drop.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Port, RxFrame};

/// Socket receive buffer asked for: enough for some milliseconds of a busy 10G link, so the
/// model's polling pauses do not turn into drops.
const RCVBUF_BYTES: libc::c_int = 4 << 20;

/// Receive buffer: a maximal IPv4/IPv6 datagram plus its Ethernet header; larger frames (only
/// possible with GRO on) are dropped.
const RX_BUF_BYTES: usize = 65536 + 14;

const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// A port on a Linux interface through a raw `AF_PACKET` socket.
#[derive(Debug)]
pub struct AfPacketPort {
    ifname: String,
    fd: OwnedFd,
    rx_buf: Vec<u8>,
    /// Frames dropped because they did not fit `rx_buf`.
    oversized: u64,
    /// The link state and when it was read: the datapath asks for every frame it sends, and
    /// an ioctl per frame was a third of the wire's system calls. A PHY is sampled every few
    /// milliseconds too; a failed send forgets the sample at once.
    link: std::cell::Cell<Option<(std::time::Instant, bool)>>,
}

/// How long a sampled link state holds.
const LINK_SAMPLE: std::time::Duration = std::time::Duration::from_millis(10);

/// The context of an error: `af_packet: {op} {ifname}: {err}`, with a hint when it is about
/// privileges.
fn os_error(op: &str, ifname: &str, err: &io::Error) -> io::Error {
    let hint =
        if err.kind() == io::ErrorKind::PermissionDenied { " (needs root or CAP_NET_RAW)" } else { "" };
    io::Error::new(err.kind(), format!("af_packet: {op} {ifname}: {err}{hint}"))
}

/// An `ifreq` naming `ifname`, which `open` checked is shorter than IFNAMSIZ.
fn ifreq_for(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name array and a union of integers, sockaddrs and a
    // pointer); all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    req
}

/// Sets an integer socket option.
fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value points to a live c_int whose size is
    // passed along.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl AfPacketPort {
    /// Reads the link state: administratively up and operationally up (carrier present).
    fn read_link(&self) -> bool {
        match self.ifreq_ioctl(libc::SIOCGIFFLAGS) {
            Ok(req) => {
                // SAFETY: SIOCGIFFLAGS fills the `ifru_flags` member of the union.
                let flags = libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags });
                flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
            }
            Err(_) => false, // The interface is gone.
        }
    }

    /// Opens a raw socket on the interface `ifname` of the calling thread's network namespace:
    /// non-blocking, bound to the interface, not reading back its own sends, with a large
    /// receive buffer. Needs root or CAP_NET_RAW.
    pub fn open(ifname: &str) -> io::Result<Self> {
        if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains(['\0', '/']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("af_packet: invalid interface name {ifname:?}"),
            ));
        }
        // Looked up before the socket is made, so that a wrong name is reported as such even
        // to an unprivileged user.
        let cname = CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("af_packet: no such interface {ifname:?}"),
            ));
        }

        // Protocol 0 receives nothing: frames flow only once `bind` sets ETH_P_ALL for this
        // interface, so no frame of another interface sneaks in between socket() and bind().
        // SAFETY: plain system call with constant arguments.
        let raw = unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
        };
        if raw < 0 {
            return Err(os_error("socket for", ifname, &io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let port = Self {
            ifname: ifname.to_owned(),
            fd,
            rx_buf: vec![0; RX_BUF_BYTES],
            oversized: 0,
            link: std::cell::Cell::new(None),
        };
        let hatype = port.hw_addr().map_err(|e| os_error("hardware address of", ifname, &e))?.sa_family;
        if hatype != libc::ARPHRD_ETHER && hatype != libc::ARPHRD_LOOPBACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("af_packet: {ifname} is not an Ethernet interface (hardware type {hatype})"),
            ));
        }

        // Without it (kernels before 4.20) `recv_batch` filters PACKET_OUTGOING frames itself.
        if let Err(e) = set_int_opt(&port.fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1) {
            tracing::debug!(interface = ifname, error = %e, "PACKET_IGNORE_OUTGOING unavailable");
        }
        set_int_opt(&port.fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
            .map_err(|e| os_error("PACKET_AUXDATA on", ifname, &e))?;
        // SO_RCVBUFFORCE passes the rmem_max limit but needs CAP_NET_ADMIN; SO_RCVBUF is capped.
        let rcvbuf = set_int_opt(&port.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF_BYTES)
            .or_else(|_| set_int_opt(&port.fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF_BYTES));
        if let Err(e) = rcvbuf {
            tracing::debug!(interface = ifname, error = %e, "could not enlarge the receive buffer");
        }

        // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex =
            libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: `addr` is a live sockaddr_ll and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                port.fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_error("bind to", ifname, &io::Error::last_os_error()));
        }
        Ok(port)
    }

    /// The interface this port is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Frames dropped because they were larger than the receive buffer (GRO left on?).
    pub fn oversized_frames(&self) -> u64 {
        self.oversized
    }

    /// Runs an `SIOCGIF*` request for the interface on the port's own socket, so it is answered
    /// in the socket's network namespace (sysfs would answer for the namespace /sys was mounted
    /// in, which is not this interface's when the port was opened from another namespace).
    fn ifreq_ioctl(&self, request: libc::c_ulong) -> io::Result<libc::ifreq> {
        let mut req = ifreq_for(&self.ifname);
        // SAFETY: `req` is a live, NUL-terminated ifreq; SIOCGIFHWADDR/SIOCGIFFLAGS write only
        // inside it.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, &raw mut req) };
        if rc == 0 { Ok(req) } else { Err(io::Error::last_os_error()) }
    }

    fn hw_addr(&self) -> io::Result<libc::sockaddr> {
        let req = self.ifreq_ioctl(libc::SIOCGIFHWADDR)?;
        // SAFETY: SIOCGIFHWADDR fills the `ifru_hwaddr` member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_hwaddr })
    }

    /// Receives one frame, `Ok(None)` if nothing is waiting.
    fn recv_one(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            // SAFETY: sockaddr_ll and msghdr are plain old data; all zeroes is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            // u64 elements keep the control buffer aligned for cmsghdr.
            let mut control = [0u64; 16];
            let mut iov =
                libc::iovec { iov_base: self.rx_buf.as_mut_ptr().cast(), iov_len: self.rx_buf.len() };
            // SAFETY: as above.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&raw mut from).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            // MSG_TRUNC: return the frame's real length, so an oversized frame is detected.
            // SAFETY: every pointer in `msg` refers to a live local or to `rx_buf`, with the
            // right length; they all outlive the call.
            let n = unsafe {
                libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
            };
            let Ok(len) = usize::try_from(n) else {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(os_error("receive on", &self.ifname, &err)),
                }
            };
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue; // Our own send, on a kernel without PACKET_IGNORE_OUTGOING.
            }
            if len > self.rx_buf.len() {
                if self.oversized == 0 {
                    tracing::warn!(interface = %self.ifname, len, "dropping oversized frames: are offloads (GRO) off?");
                }
                self.oversized += 1;
                continue;
            }
            // SAFETY: `msg` was filled by recvmsg and its control buffer is still alive.
            let vlan = unsafe { vlan_from_auxdata(&msg) };
            let frame = &self.rx_buf[..len];
            return Ok(Some(match vlan {
                Some(tag) if len >= 12 => {
                    let mut data = Vec::with_capacity(len + 4);
                    data.extend_from_slice(&frame[..12]);
                    data.extend_from_slice(&tag);
                    data.extend_from_slice(&frame[12..]);
                    data
                }
                _ => frame.to_vec(),
            }));
        }
    }
}

/// The 802.1Q tag (TPID, TCI, network order) the kernel took off the frame, from its
/// `PACKET_AUXDATA` control message, if it took one.
///
/// # Safety
/// `msg` must have been filled by a successful `recvmsg` and its control buffer must be alive.
unsafe fn vlan_from_auxdata(msg: &libc::msghdr) -> Option<[u8; 4]> {
    // SAFETY: per this function's contract, `msg` describes a valid control buffer.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return either null or a header inside the buffer.
        let hdr = unsafe { &*cmsg };
        let needed = size_of::<libc::tpacket_auxdata>();
        // SAFETY: pure arithmetic on a length.
        if hdr.cmsg_level == libc::SOL_PACKET
            && hdr.cmsg_type == libc::PACKET_AUXDATA
            && hdr.cmsg_len as usize >= unsafe { libc::CMSG_LEN(needed as u32) } as usize
        {
            // SAFETY: the kernel wrote a whole tpacket_auxdata after this header (length checked
            // just above); it may be unaligned, hence read_unaligned.
            let aux: libc::tpacket_auxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::tpacket_auxdata>()) };
            // Old kernels do not set VLAN_VALID but leave the TCI at 0 when there is no tag.
            if aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 && aux.tp_vlan_tci == 0 {
                return None;
            }
            let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                libc::ETH_P_8021Q as u16
            };
            let [t0, t1] = tpid.to_be_bytes();
            let [c0, c1] = aux.tp_vlan_tci.to_be_bytes();
            return Some([t0, t1, c0, c1]);
        }
        // SAFETY: `cmsg` is a header of `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

impl Port for AfPacketPort {
    fn recv_batch(&mut self, out: &mut Vec<RxFrame>, max: usize) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            match self.recv_one() {
                Ok(Some(data)) => {
                    out.push(RxFrame { data, timestamp_ns: None });
                    n += 1;
                }
                Ok(None) => break,
                // Frames already taken are delivered; a persistent error shows up next call.
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is a live slice and its exact length is passed.
            let n = unsafe {
                libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT)
            };
            if n >= 0 {
                // Packet sockets send a frame whole or not at all.
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                self.link.set(None);
            }
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                // A full queue (EAGAIN) or no buffer memory (ENOBUFS): the frame is dropped.
                Some(libc::EAGAIN | libc::ENOBUFS) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("af_packet: send on {}: {err}", self.ifname),
                    ));
                }
                _ => return Err(os_error("send on", &self.ifname, &err)),
            }
        }
    }

    /// Up when the interface is administratively up and operationally up (carrier present).
    fn link_up(&self) -> bool {
        if let Some((at, up)) = self.link.get() {
            if at.elapsed() < LINK_SAMPLE {
                return up;
            }
        }
        let up = self.read_link();
        self.link.set(Some((std::time::Instant::now(), up)));
        up
    }

    fn mac(&self) -> Option<[u8; 6]> {
        let addr = self.hw_addr().ok()?;
        if addr.sa_family != libc::ARPHRD_ETHER {
            return None; // Loopback: an all-zero placeholder, not an address.
        }
        let mut mac = [0u8; 6];
        for (dst, src) in mac.iter_mut().zip(addr.sa_data) {
            *dst = u8::from_ne_bytes(src.to_ne_bytes());
        }
        Some(mac)
    }

    fn describe(&self) -> String {
        format!("af_packet:{}", self.ifname)
    }
}

#[cfg(test)]
#[path = "afpacket_tests.rs"]
mod tests;
