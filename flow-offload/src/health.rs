//! The device's health as the flow table sees it: noticing that the NIC was lost (it stopped
//! completing commands, was reset behind the driver's back, or the way to it is gone, as when a
//! `sluice sim` process exits), bringing it back, and the fault state in between.
//!
//! Bringing it back is a reset and bring-up over the same transport, or, when the transport is
//! broken, a reconnect first (a model restarted on the same socket); then every next hop and
//! record is rewritten from the shadow ([`FlowTable::reconcile`]). An attempt that fails puts
//! the table in its fault state: nothing is sent to the device, the shadow keeps every decision,
//! and the next attempt waits a backoff that doubles from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`].
//! Each change of state is logged once (lost, back); failed attempts in between are counted
//! ([`crate::Stats::recovery_failures`]) and logged at debug level.

use crate::table::FlowTable;
use host_driver::DriverError;
use std::time::{Duration, Instant};

/// The wait before the second attempt to bring a lost device back.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A device that was lost and is not back yet.
#[derive(Clone, Debug)]
pub struct DeviceFault {
    /// When it was found lost.
    pub since: Instant,
    /// Attempts to bring it back so far (all failed).
    pub attempts: u64,
    /// Why the last attempt failed.
    pub last_error: String,
    next_try: Instant,
    backoff: Duration,
}

impl DeviceFault {
    /// How long the device has been lost.
    pub fn duration(&self) -> Duration {
        self.since.elapsed()
    }
}

/// What [`FlowTable::check_device`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceCheck {
    /// The device answers as brought up.
    Up,
    /// It had been lost and was brought back just now, its table rewritten (its port
    /// registers were reset with it: the caller programs them again).
    Recovered,
    /// It is lost and not back yet.
    Faulted,
}

impl FlowTable {
    /// The fault state, while the device is lost.
    pub fn fault(&self) -> Option<&DeviceFault> {
        self.fault.as_ref()
    }

    /// Checks that the device is still there as brought up; if it was lost, tries to bring it
    /// back (at most once per backoff). The engine calls it a few times a second.
    pub fn check_device(&mut self) -> DeviceCheck {
        if let Some(f) = &self.fault {
            if Instant::now() < f.next_try {
                return DeviceCheck::Faulted;
            }
        } else if !self.nic.transport_broken() && self.nic.is_alive(self.resets) {
            return DeviceCheck::Up;
        } else {
            tracing::error!(
                device = %self.nic.transport().describe(),
                "the NIC was lost (reset behind the driver's back, or its connection gone): bringing it back"
            );
        }
        match self.recover_in_place() {
            Ok(()) => DeviceCheck::Recovered,
            Err(_) => DeviceCheck::Faulted,
        }
    }

    /// Resets the device (or reconnects to it when the way to it is gone), brings it up with the
    /// same configuration (steering included) and rewrites every next hop and record from the
    /// shadow. Commands that were queued or in flight are not resent one by one: the shadow
    /// already holds their effect. A failure enters (or stays in) the fault state.
    pub fn recover_in_place(&mut self) -> Result<(), DriverError> {
        let result = if self.nic.transport_broken() { self.nic.reconnect() } else { self.nic.reinit() };
        let result = result.and_then(|()| {
            self.resets = self.nic.reset_count();
            self.max_in_flight = self.max_in_flight.min(self.nic.command_room() as usize).max(1);
            self.reconcile()
        });
        match result {
            Ok(()) => {
                self.stats.recoveries += 1;
                if let Some(f) = self.fault.take() {
                    tracing::warn!(
                        after_s = format_args!("{:.1}", f.duration().as_secs_f64()),
                        attempts = f.attempts + 1,
                        "the NIC is back: its table was rewritten from the shadow"
                    );
                } else {
                    tracing::warn!("the NIC is back: its table was rewritten from the shadow");
                }
                Ok(())
            }
            Err(e) => {
                self.stats.recovery_failures += 1;
                let now = Instant::now();
                match &mut self.fault {
                    Some(f) => {
                        f.attempts += 1;
                        f.backoff = (f.backoff * 2).min(MAX_BACKOFF);
                        f.next_try = now + f.backoff;
                        f.last_error = e.to_string();
                        tracing::debug!(error = %e, attempts = f.attempts, "the NIC is still lost");
                    }
                    None => {
                        tracing::error!(
                            error = %e,
                            "the NIC could not be brought back: retrying with backoff; flows stay in the shadow"
                        );
                        self.fault = Some(DeviceFault {
                            since: now,
                            attempts: 1,
                            last_error: e.to_string(),
                            next_try: now + FIRST_BACKOFF,
                            backoff: FIRST_BACKOFF,
                        });
                    }
                }
                Err(e)
            }
        }
    }

    /// Resets the device and rewrites its table ([`Self::recover_in_place`]), by value.
    pub fn recover(mut self) -> Result<FlowTable, DriverError> {
        self.recover_in_place()?;
        Ok(self)
    }
}
