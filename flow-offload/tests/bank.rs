//! The counter bank through the flow table: sets allocated by the host and named by installs,
//! a free refused while a flow names the set (by the shadow, before the NIC would), a flow moved
//! to another set, the bank read in one command, and a device reset repaired with every set
//! allocated again before the records that name them.

mod common;

use common::tcp_flow;
use flow_offload::table::{Flow, FlowTable, InstallError};
use host_driver::transport::inprocess::{InProcess, SharedInProcess};
use host_driver::{Nic, NicConfig};
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use std::sync::Arc;

fn table() -> (FlowTable, SharedInProcess) {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let cfg = ModelConfig { next_hops: 16, ..ModelConfig::small(256) };
    let model = SharedInProcess::new(InProcess::new(cfg, clock).unwrap());
    let nic =
        Nic::bring_up(Box::new(model.clone()), NicConfig { ring_log2: 8, ..NicConfig::default() }).unwrap();
    (FlowTable::new(nic).unwrap(), model)
}

fn flow(n: u16, set: u16) -> Flow {
    Flow { counter_set: set, ..tcp_flow(n) }
}

#[test]
fn sets_are_allocated_named_moved_freed_and_read_in_bulk() {
    let (mut t, _model) = table();
    assert_eq!(t.counter_set_capacity(), 2048);
    let (a, b) = (t.alloc_counter_set().unwrap(), t.alloc_counter_set().unwrap());
    assert_eq!((a, b), (1, 2), "the lowest free numbers, set 0 being none");
    assert!(matches!(t.install(flow(1, 9)), Err(InstallError::Invalid(_))), "set 9 is not allocated");
    let h1 = t.install(flow(1, a)).unwrap();
    let _h2 = t.install(flow(2, a)).unwrap();
    assert!(t.commit().unwrap().is_empty(), "the NIC took the sets and the installs");
    assert_eq!(t.counter_set_refs(a), 2);
    let refused = t.free_counter_set(a).unwrap_err().to_string();
    assert!(refused.contains("named by 2"), "{refused}");
    t.set_flow_counter_set(h1, b).unwrap();
    assert_eq!((t.counter_set_refs(a), t.counter_set_refs(b)), (1, 1));
    assert!(t.commit().unwrap().is_empty(), "the NIC took the move");
    t.remove(h1, false).unwrap();
    t.free_counter_set(b).unwrap();
    assert!(t.free_counter_set(b).is_err(), "already free");
    let bank = t.read_counter_bank().unwrap();
    assert_eq!(bank.len(), 2, "read up to the highest allocated set");
    assert!(t.take_refused().is_empty(), "the NIC refused nothing: its counts agree with the shadow's");
    assert_eq!(t.counter_sets_used(), 1);
}

#[test]
fn a_device_reset_allocates_every_set_again_before_the_records() {
    let (mut t, _model) = table();
    let set = t.alloc_counter_set().unwrap();
    for n in 0..20 {
        t.install(flow(n, set)).unwrap();
    }
    assert!(t.commit().unwrap().is_empty());
    let mut t = t.recover().unwrap();
    assert_eq!(t.occupancy(), 20);
    assert_eq!(t.read_counter_bank().unwrap().len(), usize::from(set) + 1);
    // The NIC's count of records naming the set came back with them: the free is refused.
    t.nic()
        .execute(&[Nic::counter_set_free_command(set)])
        .map(|c| {
            assert_eq!(c[0].status, rtl_spec::codes::Status::CounterSetInUse as u8);
        })
        .unwrap();
}
