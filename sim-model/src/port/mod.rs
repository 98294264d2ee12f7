//! Packet ports: where the model's frames come from and go to.
//!
//! A [`Port`] is one Ethernet port of the NIC model, i.e. its wire. This module owns the trait
//! and the three kinds of wire the model can be attached to:
//!
//! - [`MemoryPort`]: an in-memory queue pair driven by a [`MemoryPortHandle`], for tests;
//! - [`PcapPort`]: frames read from a pcap/pcapng capture ([`PcapSource`]) and written to a
//!   classic pcap file ([`PcapSink`]), for `replay`;
//! - [`AfPacketPort`]: a raw `AF_PACKET` socket on a Linux interface (a veth, a TAP or a real
//!   NIC), for `sluice sim --port NAME=IFACE` and the test topologies.
//!
//! Ports carry whole Ethernet frames without the FCS, exactly as they are on the wire. They do
//! not parse, rewrite or count anything: that is the datapath's business. They never block, so
//! the model can poll many ports from one thread.

mod afpacket;
mod memory;
mod pcap;

pub use afpacket::AfPacketPort;
pub use memory::{MemoryPort, MemoryPortHandle};
pub use pcap::{PcapPort, PcapSink, PcapSource};

/// A frame received from a port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RxFrame {
    /// The Ethernet frame, from the destination MAC to the end of the payload (no FCS).
    pub data: Vec<u8>,
    /// When the frame arrived, in nanoseconds, if the source knows it (a capture's timestamp,
    /// a test's chosen time); `None` when the model should stamp it with its own clock.
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
    /// Receives up to `max` frames into `out` (appended, each with its arrival time in ns if the
    /// source has one, else None). Never blocks: returns Ok(0) when nothing is waiting.
    ///
    /// If an error happens after some frames were received, those frames are returned with
    /// `Ok(n)` and the error is reported by a later call where the port can tell.
    fn recv_batch(&mut self, out: &mut Vec<RxFrame>, max: usize) -> std::io::Result<usize>;
    /// Sends one frame.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
    /// The link state (true for memory and pcap ports; the interface's operstate/carrier for
    /// AF_PACKET).
    fn link_up(&self) -> bool;
    /// The MAC address of what the port is attached to, if it has one (AF_PACKET: the
    /// interface's MAC).
    fn mac(&self) -> Option<[u8; 6]>;
    /// A short description for logs ("memory", "pcap:in.pcap", "af_packet:veth0").
    fn describe(&self) -> String;
}

// So the device can hold `Vec<Box<dyn Port>>` and still hand a single port to generic code.
impl<P: Port + ?Sized> Port for Box<P> {
    fn recv_batch(&mut self, out: &mut Vec<RxFrame>, max: usize) -> std::io::Result<usize> {
        (**self).recv_batch(out, max)
    }
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        (**self).send(frame)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_port_delegates() {
        let (port, handle) = MemoryPort::new();
        let mut boxed: Box<dyn Port> = Box::new(port);
        handle.push_rx(vec![1, 2, 3], Some(7));
        let mut out = Vec::new();
        assert_eq!(boxed.recv_batch(&mut out, 8).unwrap(), 1);
        assert_eq!(out, vec![RxFrame { data: vec![1, 2, 3], timestamp_ns: Some(7) }]);
        boxed.send(&[4, 5]).unwrap();
        assert_eq!(handle.take_tx(), vec![vec![4, 5]]);
        assert!(boxed.link_up());
        assert_eq!(boxed.mac(), None);
        assert_eq!(boxed.describe(), "memory");
    }
}
