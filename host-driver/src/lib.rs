//! # host_driver: the userspace driver of the Sluice NIC
//!
//! One code path over a [`transport::Transport`] (a mapped BAR0, DMA memory, interrupt
//! eventfds), whatever is on the other side: a card through kernel VFIO, the sim-model in
//! another process over vfio-user, or the sim-model in this process.
//!
//! - [`transport`]: the seam and its three implementations;
//! - [`dma`]: DMA memory, touched only with volatile accesses;
//! - [`nic`]: bring-up, capability discovery, [`nic::DeviceInfo`], reset and recovery;
//! - [`rings`]: typed, batch-oriented ring wrappers (producers and consumers of any entry
//!   format);
//! - [`queues`]: the exception and inject rings and their frame pool, which the driver lends
//!   to the code that moves packets ([`Nic::take_queues`]);
//! - [`link`]: the transport shared by the driver and the queues it lent;
//! - [`flash`]: the flash controller: boot status, writing and activating a slot, confirming;
//! - [`error`]: what can go wrong, named.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod dma;
pub mod error;
pub mod flash;
pub mod link;
pub mod memory;
pub mod nic;
pub mod queues;
pub mod rings;
pub mod transport;

pub use error::DriverError;
pub use nic::{DeviceInfo, Nic, NicConfig};
pub use queues::{Exception, FramePool, Queues};
