//! Packet ports: where the model's frames come from and go to.
//!
//! A [`Port`] is one Ethernet port of the NIC model, i.e. its wire. This module owns the trait,
//! the burst it receives into ([`RxBurst`]) and the kinds of wire the model can be attached to:
//!
//! - [`MemoryPort`]: an in-memory queue pair driven by a [`MemoryPortHandle`], for tests;
//! - [`PcapPort`]: frames read from a pcap/pcapng capture ([`PcapSource`]) and written to a
//!   classic pcap file ([`PcapSink`]), for `replay`;
//! - [`AfXdpPort`]: an AF_XDP socket on a Linux interface (UMEM and four rings, an XDP program
//!   of our own redirecting the interface's frames to it), the first choice on an interface;
//! - [`AfPacketPort`]: an `AF_PACKET` socket with TPACKET_V3 mmap rings, the fallback where
//!   XDP cannot attach.
//!
//! [`open_interface`] chooses between the last two as `[[port]] kind` and `sluice sim --port
//! NAME=IFACE,kind=…` ask ([`PortKind`]).
//!
//! The surface is built for bursts, as the hardware's pipeline is: [`Port::recv_burst`] appends
//! up to [`BURST`] frames to a burst the caller reuses (no allocation per frame), [`Port::send`]
//! queues one frame and [`Port::flush`] hands everything queued to the wire at once (one system
//! call per burst on an interface), and [`Port::poll_fd`] gives a descriptor that an idle
//! poller sleeps on with `poll()`. Ports carry whole Ethernet frames without the FCS, exactly as
//! they are on the wire. They do not parse, rewrite or count anything: that is the datapath's
//! business. They never block.

mod afpacket;
mod afpacket_ring;
mod afxdp;
mod burst;
mod memory;
mod mmap;
mod netdev;
mod pcap;
#[cfg(test)]
mod test_netns;
mod xdp_prog;

use std::io;
use std::os::fd::RawFd;

pub use afpacket::AfPacketPort;
pub use afxdp::{AfXdpPort, XdpMode};
pub use burst::{BURST, BurstFrame, RxBurst};
pub use memory::{MemoryPort, MemoryPortHandle};
pub use pcap::{PcapPort, PcapSink, PcapSource};

/// A frame read from a capture file ([`PcapSource::next_frame`]): owned, one at a time, for
/// code that reads captures outside the model (`replay` merges them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RxFrame {
    /// The Ethernet frame, from the destination MAC to the end of the payload (no FCS).
    pub data: Vec<u8>,
    /// When the frame arrived, in nanoseconds, if the source knows it; `None` otherwise.
    pub timestamp_ns: Option<u64>,
}

impl RxFrame {
    /// A frame with no arrival time of its own.
    pub fn new(data: Vec<u8>) -> Self {
        Self { data, timestamp_ns: None }
    }
}

/// One Ethernet port of the model.
pub trait Port: Send {
    /// Receives up to `max` frames, appended to `burst`. Never blocks: returns Ok(0) when
    /// nothing is waiting.
    ///
    /// If an error happens after some frames were received, those frames are returned with
    /// `Ok(n)` and the error is reported by a later call where the port can tell.
    fn recv_burst(&mut self, burst: &mut RxBurst, max: usize) -> io::Result<usize>;
    /// Queues one frame for the wire. It leaves at the next [`flush`](Self::flush) at the
    /// latest (ports without a queue send at once). An error drops this frame only:
    /// `ErrorKind::WouldBlock` when the port's queue is full.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Hands every queued frame to the wire (one kick for the lot). A no-op for ports that send
    /// at once.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// A descriptor that polls readable (`POLLIN`) when frames are waiting, for a poller that
    /// sleeps when idle; `None` for ports that have none (memory, pcap: poll them).
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    /// The link state (true for memory and pcap ports; the interface's operstate/carrier for
    /// interface ports).
    fn link_up(&self) -> bool;
    /// The MAC address of what the port is attached to, if it has one (an interface's MAC).
    fn mac(&self) -> Option<[u8; 6]>;
    /// A short description for logs ("memory", "pcap:in.pcap", "af_xdp:veth0 native q0").
    fn describe(&self) -> String;
}

// So the device can hold `Vec<Box<dyn Port>>` and still hand a single port to generic code.
impl<P: Port + ?Sized> Port for Box<P> {
    fn recv_burst(&mut self, burst: &mut RxBurst, max: usize) -> io::Result<usize> {
        (**self).recv_burst(burst, max)
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        (**self).send(frame)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn poll_fd(&self) -> Option<RawFd> {
        (**self).poll_fd()
    }
    fn link_up(&self) -> bool {
        (**self).link_up()
    }
    fn mac(&self) -> Option<[u8; 6]> {
        (**self).mac()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// How a port attaches to a Linux interface: `[[port]] kind`, `sluice sim --port …,kind=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortKind {
    /// AF_XDP, or AF_PACKET when AF_XDP cannot be had here (logged once, with the reason).
    #[default]
    Auto,
    /// AF_XDP only: an error when it cannot be had.
    AfXdp,
    /// AF_PACKET (TPACKET_V3 rings) only.
    AfPacket,
}

impl PortKind {
    /// The names people write: `auto`, `af_xdp`, `af_packet`.
    pub const NAMES: [&'static str; 3] = ["auto", "af_xdp", "af_packet"];

    /// The kind a name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "af_xdp" => Some(Self::AfXdp),
            "af_packet" => Some(Self::AfPacket),
            _ => None,
        }
    }

    /// Its name, as written in a configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::AfXdp => "af_xdp",
            Self::AfPacket => "af_packet",
        }
    }
}

/// Whether an error opening an interface port is bad input (a name, queue or state the user
/// can fix: exit code 2) rather than a failure of the machine (exit code 1): no such interface,
/// an invalid name or queue, an interface that is down, or no permission.
pub fn is_bad_setting(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::PermissionDenied
    )
}

/// Opens a port on the interface `ifname` of the calling thread's network namespace, of the
/// kind asked for; `queue` is the AF_XDP receive queue (AF_PACKET sees every queue).
///
/// With [`PortKind::Auto`], an AF_XDP failure that AF_PACKET does not share (the kernel, the
/// driver, the MTU, another XDP program, missing BPF privileges) falls back to AF_PACKET with one
/// warning naming `label` and the reason; a missing or down interface or a queue that does not
/// exist is an error whatever the kind.
pub fn open_interface(label: &str, ifname: &str, kind: PortKind, queue: u32) -> io::Result<Box<dyn Port>> {
    match kind {
        PortKind::AfXdp => Ok(Box::new(AfXdpPort::open(ifname, queue)?)),
        PortKind::AfPacket => Ok(Box::new(AfPacketPort::open(ifname)?)),
        PortKind::Auto => match AfXdpPort::open(ifname, queue) {
            Ok(port) => Ok(Box::new(port)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidInput | io::ErrorKind::NetworkDown
                ) =>
            {
                Err(e)
            }
            Err(e) => {
                let port = AfPacketPort::open(ifname)?;
                tracing::warn!("{label}: AF_XDP unavailable on {ifname} ({e}); using AF_PACKET");
                Ok(Box::new(port))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_port_delegates() {
        let (port, handle) = MemoryPort::new();
        let mut boxed: Box<dyn Port> = Box::new(port);
        handle.push_rx(vec![1, 2, 3], Some(7));
        let mut burst = RxBurst::default();
        assert_eq!(boxed.recv_burst(&mut burst, 8).unwrap(), 1);
        assert_eq!(burst.get(0), Some(BurstFrame { data: &[1, 2, 3], timestamp_ns: Some(7) }));
        boxed.send(&[4, 5]).unwrap();
        boxed.flush().unwrap();
        assert_eq!(handle.take_tx(), vec![vec![4, 5]]);
        assert!(boxed.link_up());
        assert_eq!(boxed.mac(), None);
        assert_eq!(boxed.poll_fd(), None);
        assert_eq!(boxed.describe(), "memory");
    }

    #[test]
    fn kinds_have_names() {
        for name in PortKind::NAMES {
            assert_eq!(PortKind::from_name(name).unwrap().name(), name);
        }
        assert_eq!(PortKind::from_name("AF_XDP"), None);
        assert_eq!(PortKind::default(), PortKind::Auto);
    }

    #[test]
    fn bad_settings_are_told_from_failures() {
        for kind in [io::ErrorKind::NotFound, io::ErrorKind::NetworkDown, io::ErrorKind::PermissionDenied] {
            assert!(is_bad_setting(&io::Error::from(kind)));
        }
        assert!(!is_bad_setting(&io::Error::from(io::ErrorKind::OutOfMemory)));
        assert!(!is_bad_setting(&io::Error::from(io::ErrorKind::Unsupported)));
    }

    #[test]
    fn a_missing_interface_is_an_error_for_every_kind() {
        for kind in [PortKind::Auto, PortKind::AfXdp, PortKind::AfPacket] {
            let err = open_interface("p0", "sluicenx9", kind, 0).err().expect("no such interface");
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{kind:?}: {err}");
        }
    }
}
