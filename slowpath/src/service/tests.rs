//! The service set's snapshots: what they carry over, what they rebuild, what survives them.

use super::*;

fn key() -> ServiceKey {
    ServiceKey { vip: "10.10.1.100:80".parse().unwrap(), proto: Proto::Tcp }
}

fn cfg() -> ServiceConfig {
    ServiceConfig {
        key: key(),
        scheduler: SchedulerKind::Rr,
        forward: Forward::FullNat,
        local_addresses: vec!["10.10.2.1".parse().unwrap()],
        conn_limit: 0,
        synproxy: false,
        synproxy_offer: crate::synproxy::Offer::default(),
        proxy_protocol: None,
        health: None,
        backends: vec![BackendConfig { addr: "10.10.2.11:80".parse().unwrap(), weight: 1 }],
    }
}

#[test]
fn a_snapshot_rebuilds_only_the_schedulers_whose_inputs_changed() {
    let mut s = Services::default();
    s.add_service(cfg()).unwrap();
    let other = ServiceKey { vip: "10.10.1.101:80".parse().unwrap(), proto: Proto::Tcp };
    s.add_service(ServiceConfig { key: other, ..cfg() }).unwrap();
    let epochs = |t: &ServiceTable| t.services.iter().map(|v| v.scheduler_epoch).collect::<Vec<_>>();
    let t1 = s.snapshot();
    let rs: SocketAddr = "10.10.2.11:80".parse().unwrap();
    assert!(s.set_health(&other, rs, false));
    let t2 = s.snapshot();
    assert_eq!(epochs(&t2)[0], epochs(&t1)[0], "untouched: carried over");
    assert_ne!(epochs(&t2)[1], epochs(&t1)[1], "its server failed: rebuilt");
    s.set_weight(&key(), rs, 5).unwrap();
    let t3 = s.snapshot();
    assert_ne!(epochs(&t3)[0], epochs(&t2)[0], "a weight changed: rebuilt");
    assert_eq!(epochs(&t3)[1], epochs(&t2)[1]);
    // Removed and added again: a fresh build, never the old one's.
    s.del_service(&other).unwrap();
    let _ = s.snapshot();
    s.add_service(ServiceConfig { key: other, ..cfg() }).unwrap();
    let t5 = s.snapshot();
    assert!(!epochs(&t3).contains(&epochs(&t5)[1]));
}

#[test]
fn changes_make_new_snapshots_and_counters_survive_them() {
    let mut s = Services::default();
    s.add_service(cfg()).unwrap();
    assert_eq!(s.add_service(cfg()), Err(ServiceError::ServiceExists(key())));
    let t1 = s.snapshot();
    let (_, svc) = t1.find(&key()).unwrap();
    svc.backends[0].stats.active.fetch_add(3, Ordering::Relaxed);
    let rs: SocketAddr = "10.10.2.11:80".parse().unwrap();
    s.set_weight(&key(), rs, 5).unwrap();
    s.add_backend(&key(), BackendConfig { addr: "10.10.2.12:80".parse().unwrap(), weight: 1 }).unwrap();
    let t2 = s.snapshot();
    assert!(t2.version > t1.version);
    let (_, svc2) = t2.find(&key()).unwrap();
    assert_eq!(svc2.backends.len(), 2);
    assert_eq!(svc2.backends[0].weight, 5);
    assert_eq!(svc2.views()[0].active, 3, "counters outlive the snapshot");
    assert_eq!(t1.find(&key()).unwrap().1.backends.len(), 1, "the old snapshot is untouched");
    assert!(t2.is_vip("10.10.1.100".parse().unwrap()));
    assert!(t2.is_lip("10.10.2.1".parse().unwrap()));
}

#[test]
fn health_and_errors() {
    let mut s = Services::default();
    s.add_service(cfg()).unwrap();
    let rs: SocketAddr = "10.10.2.11:80".parse().unwrap();
    assert!(s.is_up(&key(), rs));
    assert!(!s.set_health(&key(), rs, true), "up is the starting state");
    assert!(s.set_health(&key(), rs, false));
    assert!(!s.snapshot().find(&key()).unwrap().1.backends[0].up);
    let v6: SocketAddr = "[fd00::1]:80".parse().unwrap();
    assert_eq!(
        s.add_backend(&key(), BackendConfig { addr: v6, weight: 1 }),
        Err(ServiceError::MixedFamilies(key(), v6.ip())),
        "an IPv6 server behind an IPv4 VIP would leave as a corrupt packet"
    );
    assert!(s.del_backend(&key(), v6).is_err());
    s.del_backend(&key(), rs).unwrap();
    s.del_service(&key()).unwrap();
    assert!(s.snapshot().services.is_empty());
}
