//! # flow_offload: the host's authoritative flow table, replicated into the NIC
//!
//! The only code that writes the NIC's flow table. The host decides, the NIC holds a replica:
//!
//! - [`placement`]: the shadow two-choice cuckoo index (spec hash, stash, bounded
//!   breadth-first moves planned make-before-break);
//! - [`table`]: [`table::FlowTable`], records and next hops, and the API the slow path uses
//!   (`install`, `remove`, `set_flow_next_hops`, `touch`, `set_next_hop`, the flushes);
//! - `records`: the shadow's compact flow records (IPv4 tuples inline, IPv6 tuples in a side
//!   slab, SYN-proxied flows' timestamp deltas in a sparse map, an intrusive free list);
//! - [`pipeline`]: batches with one doorbell, a bounded number in flight, completions reaped
//!   asynchronously, refusals rolled back, a hung device reset and rewritten;
//! - [`sync`]: counters and events back to the host, reconciliation after a reset, adoption of
//!   the NIC's table after a daemon restart;
//! - [`bank`]: the counter bank: one set per real server allocated, named by each install,
//!   moved with a flow, and read in bulk;
//! - [`health`]: noticing a lost device, bringing it back with backoff, the fault state.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bank;
mod flow;
pub mod health;
pub mod pipeline;
pub mod placement;
mod records;
pub mod sync;
pub mod table;

pub use health::{DeviceCheck, DeviceFault};
pub use sync::{AdoptError, Adopted};
pub use table::{Flow, FlowCounters, FlowEvent, FlowHashes, FlowTable, Handle, InstallError, Refusal, Stats};
