//! Getting the queued commands into the NIC: batches with one doorbell each, a bounded number
//! in flight, completions reaped whenever the caller likes (as `rte_flow_push`/`pull` do), and
//! the two ways a batch goes wrong: a command the NIC refuses (rolled back on the shadow,
//! reported) and a device that stops answering (reset and rewritten from the shadow).

use crate::table::{FlowTable, Handle, Refusal, Sent, Undo};
use host_driver::DriverError;
use rtl_spec::codes::Status;
use std::time::Instant;

impl FlowTable {
    /// Commands decided and not yet completed (queued plus in flight).
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Bounds the commands in flight (at most the command ring's size, the default).
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.max_in_flight = n.clamp(1, self.nic.command_room().max(1) as usize + self.in_flight.len());
    }

    /// Writes as many queued commands as the bound allows and rings the doorbell once. Does not
    /// wait. Returns how many went out.
    pub fn submit(&mut self) -> usize {
        let room =
            (self.nic.command_room() as usize).min(self.max_in_flight.saturating_sub(self.in_flight.len()));
        let n = room.min(self.queue.len());
        if n == 0 {
            return 0;
        }
        if self.nic.push_commands_from(self.queue.iter().take(n).map(|(cmd, _)| cmd)).is_err() {
            // Room was checked; a refusal here means the ring state is not what the driver
            // thinks. The batch stays queued; the caller's wait detects the device.
            return 0;
        }
        self.nic.flush();
        self.in_flight.extend(self.queue.drain(..n).map(|(cmd, undo)| (Sent::of(&cmd), undo)));
        n
    }

    /// Reaps the completions that have arrived, without waiting; a refused command is counted,
    /// its shadow change undone and kept for [`Self::take_refused`]. Returns how many completed.
    pub fn poll_completions(&mut self) -> usize {
        let mut got = std::mem::take(&mut self.reaped);
        got.clear();
        let n = self.nic.reap(&mut got, self.in_flight.len());
        for &cpl in &got {
            let Some((cmd, undo)) = self.in_flight.pop_front() else { break };
            let status = Status::try_from(cpl.status).unwrap_or(Status::BadOpcode);
            let own = match undo {
                Undo::Insert { record, .. } => self.settle_insert(record),
                Undo::Nothing => false,
            };
            if status == Status::Ok {
                continue;
            }
            self.stats.command_errors += 1;
            tracing::warn!(opcode = cmd.opcode, record = cmd.record, ?status, "the NIC refused a command");
            let refusal = match undo {
                Undo::Insert { record, cookie } => {
                    if own {
                        let _ = self.take(Handle(record), Some([cmd.slot_orig, cmd.slot_reply]));
                        self.stats.installs -= 1;
                    }
                    Refusal::Install { handle: Handle(record), cookie, status }
                }
                Undo::Nothing => Refusal::Command { opcode: cmd.opcode, record: cmd.record, status },
            };
            self.refused.push(refusal);
        }
        self.reaped = got;
        n
    }

    /// An Insert of `record` completed: whether the record still holds that install (see
    /// [`FlowTable::orphans`]), which is then settled.
    fn settle_insert(&mut self, record: u32) -> bool {
        if !self.orphans.is_empty()
            && let Some(n) = self.orphans.get_mut(&record)
        {
            *n -= 1;
            if *n == 0 {
                self.orphans.remove(&record);
            }
            return false;
        }
        self.records.settle(record);
        true
    }

    /// The refusals reaped so far (a [`Refusal::Install`] among them means that flow is not
    /// offloaded: its record was released and its connection belongs on the software path).
    pub fn take_refused(&mut self) -> Vec<Refusal> {
        std::mem::take(&mut self.refused)
    }

    /// Sends everything queued (in batches, one doorbell each) and waits for every completion.
    /// Returns the refusals of this and earlier batches. A device that completes nothing for
    /// the driver's command timeout is reset and its table rewritten from the shadow
    /// ([`Self::recover_in_place`]): every decided change is then in the NIC, nothing is lost,
    /// and `Stats::recoveries` says it happened; only a failed recovery is an error.
    pub fn commit(&mut self) -> Result<Vec<Refusal>, DriverError> {
        if self.fault.is_some() {
            // The device is lost: the shadow holds what was decided, and the recovery rewrites
            // all of it; nothing is sent meanwhile.
            self.queue.clear();
            self.in_flight.clear();
            return Ok(self.take_refused());
        }
        let timeout = self.nic.command_timeout();
        let mut last_progress = Instant::now();
        while !self.queue.is_empty() || !self.in_flight.is_empty() {
            let sent = self.submit();
            let done = self.poll_completions();
            if sent + done > 0 {
                last_progress = Instant::now();
                continue;
            }
            if last_progress.elapsed() > timeout {
                let outstanding = self.in_flight.len();
                tracing::error!(outstanding, "the NIC stopped completing commands: resetting it");
                // A failed recovery leaves the table in its fault state, retried with backoff
                // by `check_device`; the shadow keeps every decided change meanwhile.
                self.recover_in_place()?;
                break;
            }
            self.nic.wait(rtl_spec::regs::ring_id::COMPLETION, std::time::Duration::from_millis(1));
        }
        Ok(self.take_refused())
    }
}
