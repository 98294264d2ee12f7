//! The AF_PACKET port: the model's wire is a Linux network interface, seen through a packet
//! socket with TPACKET_V3 mmap rings. The fallback where XDP cannot attach.
//!
//! This module owns [`AfPacketPort`]: a raw `AF_PACKET`/`SOCK_RAW` socket bound to one
//! interface (a veth, a TAP or a real NIC) with an rx ring of blocks and a tx ring of slots
//! ([`super::afpacket_ring`]). It sees every frame the interface receives and sends frames as
//! they are, so the model can sit on one end of a veth pair as if it were the NIC on a wire.
//!
//! Why these rings: TPACKET_V3 receive hands frames over a block at a time (one status check and
//! no system call per block) where `recvmsg` cost a call per frame; the tx ring, on the same
//! socket and so in V3 layout (which for sending is V2's: one frame per slot), sends a whole
//! burst with one `send()` where `send` per frame cost a call per frame. The price is latency on
//! an idle wire: the kernel hands over a block that is not full after the retire timeout (1 ms).
//!
//! What the port expects of the interface: **offloads off**. The kernel hands packet sockets
//! frames as its stack sees them: with GRO a "frame" can be 64 KiB of coalesced segments, and
//! with checksum offload (a veth's default) the TCP/UDP checksum of a locally sent frame is
//! left partial, to be completed by hardware that does not exist here. The project's test
//! topologies therefore run `ethtool -K IF rx off tx off sg off tso off gso off gro off` on
//! every interface a port is attached to (design.md, "Test topologies"); the port does not
//! repair such artifacts (an oversized frame is counted and dropped).
//!
//! VLAN tags: Linux strips the 802.1Q tag of a received frame before packet sockets see it and
//! hands it over as metadata (in the ring's frame header, as `PACKET_AUXDATA` does for
//! `recvmsg`), so the port puts the tag back: frames come out as they were on the wire.
//!
//! Frames received carry no timestamp (`None`): the model stamps them with its own clock.
//! Sending never blocks: a full tx ring is `ErrorKind::WouldBlock`, i.e. a drop; a frame the
//! kernel refuses (longer than the MTU) is skipped (`PACKET_LOSS`) rather than stopping the ring.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::afpacket_ring::{self as ring, RxRing, TxRing};
use super::mmap::Mapping;
use super::netdev::NetDev;
use super::{Port, RxBurst};

/// `PACKET_LOSS`: skip a malformed tx frame instead of stopping the ring at it.
const PACKET_LOSS: libc::c_int = 14;

/// A port on a Linux interface through an `AF_PACKET` socket with TPACKET_V3 rings.
#[derive(Debug)]
pub struct AfPacketPort {
    // The rings' state first; the mapping is unmapped before the socket closes.
    rx: RxRing,
    tx: TxRing,
    map: Mapping,
    fd: OwnedFd,
    dev: NetDev,
}

/// Sets an integer socket option.
fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_opt(fd, level, name, &value)
}

/// Sets a socket option to the bytes of `value`.
fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value points to a live T whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl AfPacketPort {
    /// Opens a packet socket with TPACKET_V3 rings on the interface `ifname` of the calling
    /// thread's network namespace: bound to the interface, not reading back its own sends.
    /// Needs root or CAP_NET_RAW. Errors name the interface: `InvalidInput` for a bad name or
    /// a non-Ethernet interface, `NotFound` for none, `NetworkDown` for one that is down.
    pub fn open(ifname: &str) -> io::Result<Self> {
        let dev = NetDev::open("af_packet", ifname)?;
        let mtu = dev.mtu().map_err(|e| dev.error("MTU of", &e))?;

        // Protocol 0 receives nothing: frames flow only once `bind` sets ETH_P_ALL for this
        // interface, so no frame of another interface lands in the ring between socket() and
        // bind().
        // SAFETY: plain system call with constant arguments.
        let raw = unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
        };
        if raw < 0 {
            return Err(dev.error("socket for", &io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_int_opt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, version)
            .map_err(|e| dev.error("TPACKET_V3 on", &e))?;
        // Without it (kernels before 4.20) the rx walk drops PACKET_OUTGOING frames itself.
        if let Err(e) = set_int_opt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1) {
            tracing::debug!(interface = ifname, error = %e, "PACKET_IGNORE_OUTGOING unavailable");
        }
        set_int_opt(&fd, libc::SOL_PACKET, PACKET_LOSS, 1).map_err(|e| dev.error("PACKET_LOSS on", &e))?;
        // Ethernet header, one VLAN tag, the MTU.
        let (rx_req, tx_req) = ring::requests(mtu as usize + 18);
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &rx_req)
            .map_err(|e| dev.error("rx ring on", &e))?;
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_TX_RING, &tx_req)
            .map_err(|e| dev.error("tx ring on", &e))?;
        let rx_bytes = ring::ring_bytes(&rx_req);
        let map = Mapping::shared(fd.as_fd(), rx_bytes + ring::ring_bytes(&tx_req), 0)
            .map_err(|e| dev.error("mapping the rings of", &e))?;

        // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex =
            libc::c_int::try_from(dev.index()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: `addr` is a live sockaddr_ll and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(dev.error("bind to", &io::Error::last_os_error()));
        }
        Ok(Self { rx: RxRing::new(&rx_req), tx: TxRing::new(&tx_req, rx_bytes), map, fd, dev })
    }

    /// The interface this port is bound to.
    pub fn ifname(&self) -> &str {
        self.dev.name()
    }

    /// Frames dropped because they were larger than a ring block (GRO left on?).
    pub fn oversized_frames(&self) -> u64 {
        self.rx.counts.oversized
    }

    /// Frames the kernel dropped because the rx ring was full, since the last call.
    pub fn ring_drops(&self) -> u64 {
        let mut st = libc::tpacket_stats_v3 { tp_packets: 0, tp_drops: 0, tp_freeze_q_cnt: 0 };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and `len` is st's size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        };
        if rc == 0 { u64::from(st.tp_drops) } else { 0 }
    }
}

impl Port for AfPacketPort {
    fn recv_burst(&mut self, burst: &mut RxBurst, max: usize) -> io::Result<usize> {
        Ok(self.rx.recv(&self.map, burst, max))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() > self.tx.max_frame() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "af_packet: send on {}: a {}-byte frame does not fit a ring slot",
                    self.dev.name(),
                    frame.len()
                ),
            ));
        }
        if self.tx.push(&self.map, frame) {
            return Ok(());
        }
        // Every slot is queued: send them now and try once more.
        if self.tx.queued > 0 {
            self.flush()?;
            if self.tx.push(&self.map, frame) {
                return Ok(());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("af_packet: send on {}: the tx ring is full", self.dev.name()),
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tx.queued == 0 {
            return Ok(());
        }
        loop {
            // SAFETY: a send with no data: the kernel sends the ring's marked slots.
            let rc = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            if rc >= 0 {
                self.tx.queued = 0;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                // No buffer memory or a full device queue: the slots stay marked and go out at
                // the next flush.
                Some(libc::EAGAIN | libc::ENOBUFS) => return Ok(()),
                _ => {
                    self.dev.forget_link();
                    self.tx.cancel(&self.map);
                    return Err(self.dev.error("send on", &err));
                }
            }
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    /// Up when the interface is administratively up and operationally up (carrier present).
    fn link_up(&self) -> bool {
        self.dev.link_up()
    }

    fn mac(&self) -> Option<[u8; 6]> {
        self.dev.mac()
    }

    fn describe(&self) -> String {
        format!("af_packet:{}", self.dev.name())
    }
}

#[cfg(test)]
mod tests;
