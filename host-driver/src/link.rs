//! The way to one device, shared by its owners: the [`crate::Nic`] (bring-up, commands,
//! events, control registers) and the [`crate::queues::Queues`] it lends out (exceptions,
//! inject), which ring their own doorbells.
//!
//! A [`Link`] is one transport behind a lock, with a flag that says whether the rings built
//! over it are still the device's. A reset or a reconnect builds new rings over a new link and
//! retires the old one: the old link's transport is replaced by `Detached` (registers read
//! all ones, writes go nowhere) and every handle that still holds it turns inert instead of
//! reading rings the device no longer writes. The lock is uncontended on the packet path (one
//! thread drives the device); it exists so that handles can be owned apart from the `Nic`.

use crate::dma::DmaRegion;
use crate::error::DriverError;
use crate::transport::Transport;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use vmm_sys_util::eventfd::EventFd;

pub(crate) struct Attached {
    transport: Box<dyn Transport>,
    /// The rings built over this link are the device's (false once retired).
    live: bool,
    /// The LIP steering last programmed (addresses, lport mask), for a bring-up to program
    /// again after a reset, whoever set it (the `Nic` or its `Queues`).
    steering: Option<(Vec<std::net::IpAddr>, u32)>,
}

/// One transport, shared by the driver and the queue handles it lent.
#[derive(Clone)]
pub struct Link(Arc<Mutex<Attached>>);

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Link").field("device", &g.describe()).field("live", &g.is_live()).finish()
    }
}

impl Link {
    pub(crate) fn new(transport: Box<dyn Transport>) -> Link {
        Link(Arc::new(Mutex::new(Attached { transport, live: true, steering: None })))
    }

    /// A link to no device (a driver between devices).
    pub(crate) fn detached() -> Link {
        let link = Link::new(Box::new(Detached));
        link.lock().0.live = false;
        link
    }

    /// The transport, locked for the duration of the guard. A poisoned lock (a panic while it
    /// was held) is taken over: the transport holds no invariant a panic could break halfway.
    pub(crate) fn lock(&self) -> TransportGuard<'_> {
        TransportGuard(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes the transport out (leaving [`Detached`]) and marks every ring built over this link
    /// as no longer the device's.
    pub(crate) fn retire(&self) -> Box<dyn Transport> {
        let mut g = self.lock();
        g.0.live = false;
        std::mem::replace(&mut g.0.transport, Box::new(Detached))
    }
}

/// A locked transport: dereferences to it.
pub struct TransportGuard<'a>(MutexGuard<'a, Attached>);

impl TransportGuard<'_> {
    /// Whether the rings built over this link are still the device's.
    pub fn is_live(&self) -> bool {
        self.0.live
    }

    pub(crate) fn steering(&self) -> Option<(Vec<std::net::IpAddr>, u32)> {
        self.0.steering.clone()
    }

    pub(crate) fn remember_steering(&mut self, lips: &[std::net::IpAddr], lport_mask: u32) {
        self.0.steering = Some((lips.to_vec(), lport_mask));
    }
}

impl std::ops::Deref for TransportGuard<'_> {
    type Target = dyn Transport;
    fn deref(&self) -> &Self::Target {
        self.0.transport.as_ref()
    }
}

impl std::ops::DerefMut for TransportGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.transport.as_mut()
    }
}

/// What a link holds while it is between devices (during a reset, after a failed one, once
/// retired): a device that is not there.
pub(crate) struct Detached;

impl Transport for Detached {
    fn describe(&self) -> String {
        "no device (detached after a failed reset)".to_string()
    }
    fn read32(&mut self, _offset: u32) -> u32 {
        u32::MAX
    }
    fn write32(&mut self, _offset: u32, _value: u32) {}
    fn read64(&mut self, _offset: u32) -> u64 {
        u64::MAX
    }
    fn write64(&mut self, _offset: u32, _value: u64) {}
    fn alloc_dma(&mut self, _len: usize) -> Result<DmaRegion, DriverError> {
        Err(DriverError::BringUp("the device is detached".into()))
    }
    fn free_dma(&mut self, _region: &DmaRegion) -> Result<(), DriverError> {
        Ok(())
    }
    fn interrupt(&mut self, _vector: u16) -> Result<Option<EventFd>, DriverError> {
        Ok(None)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        Err(DriverError::BringUp("the device is detached".into()))
    }
}
