//! Virtual services and their real servers: what the operator configures, and the immutable
//! snapshots the workers schedule from.
//!
//! The control plane owns a [`Services`] (add, change, remove at run time) and publishes each
//! change as a new [`ServiceTable`] behind an `Arc`: a worker swaps its pointer between two
//! batches, so the packet path never takes a lock and never sees a half-applied change.
//! Schedulers are built with the snapshot (the Maglev table among them, off the packet path),
//! and only for the services whose configuration or servers' health changed: the others carry
//! their scheduler over, and each worker keeps its own copy's position.
//! Counters live in `Arc`s of atomics that survive snapshots, so a weight change does not
//! reset a server's connection counts.

use crate::addr::hash_endpoint;
use crate::sched::{self, BackendView, Scheduler, SchedulerKind};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

mod kinds;
pub use kinds::{Forward, Proto};

/// What identifies a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// VIP and port.
    pub vip: SocketAddr,
    /// TCP or UDP.
    pub proto: Proto,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.vip, self.proto.as_str())
    }
}

/// Health check of a service's servers (run by [`crate::health`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is checked.
    pub kind: HealthKind,
    /// Between checks.
    pub interval: std::time::Duration,
    /// A check that takes longer fails.
    pub timeout: std::time::Duration,
    /// Good checks in a row that bring a down server up.
    pub rise: u32,
    /// Failed checks in a row that take an up server down.
    pub fall: u32,
}

/// The kind of a health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP GET that must answer `expect`.
    Http {
        /// Path requested.
        path: String,
        /// Status expected.
        expect: u16,
        /// Host header (the server's address when absent).
        host: Option<String>,
    },
}

/// What the operator configures for a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// VIP, port, protocol.
    pub key: ServiceKey,
    /// How a new connection picks its real server.
    pub scheduler: SchedulerKind,
    /// How its connections are forwarded.
    pub forward: Forward,
    /// Local addresses (LIPs) the service's connections use toward its servers.
    pub local_addresses: Vec<IpAddr>,
    /// At most this many connections at once (0: no limit).
    pub conn_limit: u32,
    /// Answer SYNs with SYN cookies and open toward the server only once the client has
    /// proven its address (TCP only; see [`crate::synproxy`]).
    pub synproxy: bool,
    /// What the SYN proxy promises clients for the servers: timestamps, window scale.
    pub synproxy_offer: crate::synproxy::Offer,
    /// Tell the servers the client's address: a PROXY protocol v2 header at the start of the
    /// server-side stream (TCP, not with `synproxy`; see [`crate::proxy_protocol`]).
    pub proxy_protocol: Option<crate::proxy_protocol::ProxyProtocol>,
    /// Health check of the servers.
    pub health: Option<HealthCheck>,
    /// Real servers.
    pub backends: Vec<BackendConfig>,
}

/// What the operator configures for a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// Address and port.
    pub addr: SocketAddr,
    /// Weight (0: drain).
    pub weight: u32,
}

/// A server's counters, shared by every snapshot and every worker.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Connections in ESTABLISHED.
    pub active: AtomicU32,
    /// Other connections.
    pub inactive: AtomicU32,
    /// Connections scheduled to it since it was added.
    pub connections: AtomicU64,
    /// Packets forwarded to it by the host path.
    pub packets_in: AtomicU64,
    /// Packets forwarded from it by the host path.
    pub packets_out: AtomicU64,
    /// Bytes forwarded to it by the host path.
    pub bytes_in: AtomicU64,
    /// Bytes forwarded from it by the host path.
    pub bytes_out: AtomicU64,
    /// Packets to it the NIC forwarded (offloaded flows), from its counter set.
    pub nic_packets_in: AtomicU64,
    /// Packets from it the NIC forwarded.
    pub nic_packets_out: AtomicU64,
    /// Bytes to it the NIC forwarded.
    pub nic_bytes_in: AtomicU64,
    /// Bytes from it the NIC forwarded.
    pub nic_bytes_out: AtomicU64,
}

/// A service's counters.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Connections at this moment.
    pub current: AtomicU32,
    /// Connections created.
    pub connections: AtomicU64,
    /// New connections refused: no server available.
    pub no_backend: AtomicU64,
    /// New connections refused: the connection limit.
    pub over_limit: AtomicU64,
    /// New connections refused: no local port free.
    pub no_port: AtomicU64,
}

/// A real server in a snapshot.
#[derive(Clone, Debug)]
pub struct Backend {
    /// Address and port.
    pub addr: SocketAddr,
    /// Its share of new connections under a weighted scheduler (0: none).
    pub weight: u32,
    /// Passes its health check.
    pub up: bool,
    /// What the workers count for this server, shared across snapshots.
    pub stats: Arc<BackendStats>,
    /// Its stable identity for the schedulers (a hash of the address, computed with the
    /// snapshot, not per connection).
    pub id: u64,
}

/// A service in a snapshot.
#[derive(Debug)]
pub struct Service {
    /// The configuration it was built from.
    pub config: ServiceConfig,
    /// Its servers, in configuration order.
    pub backends: Vec<Backend>,
    /// The scheduler, as built for these servers; each worker takes a copy.
    pub scheduler: Box<dyn Scheduler>,
    /// Which build of the scheduler this is: a snapshot that changed nothing the scheduler
    /// reads (the service's configuration, its servers' weights and health) carries the last
    /// one over with the same epoch, and a worker then keeps its own copy and its position.
    pub scheduler_epoch: u64,
    /// What the workers count for this service, shared across snapshots.
    pub stats: Arc<ServiceStats>,
}

impl Service {
    /// What the scheduler sees of the servers now.
    pub fn views(&self) -> Vec<BackendView> {
        self.backends.iter().map(view).collect()
    }

    /// The server at `addr`.
    pub fn backend(&self, addr: SocketAddr) -> Option<&Backend> {
        self.backends.iter().find(|b| b.addr == addr)
    }
}

/// A service's servers as its scheduler reads them: a view is made only for the servers the
/// pick looks at (no copy of the whole list per connection).
impl crate::sched::Servers for Service {
    fn len(&self) -> usize {
        self.backends.len()
    }
    fn view(&self, i: usize) -> BackendView {
        view(&self.backends[i])
    }
}

fn view(b: &Backend) -> BackendView {
    BackendView {
        weight: b.weight,
        up: b.up,
        active: b.stats.active.load(Ordering::Relaxed),
        inactive: b.stats.inactive.load(Ordering::Relaxed),
        id: b.id,
    }
}

/// An immutable snapshot of every service.
#[derive(Debug, Default)]
pub struct ServiceTable {
    /// Services in configuration order.
    pub services: Vec<Service>,
    /// Looked up for every new connection: [`crate::addr::FastMap`], as the keys are the
    /// operator's, not a client's.
    index: crate::addr::FastMap<ServiceKey, usize>,
    /// Increases with every change.
    pub version: u64,
}

impl ServiceTable {
    /// The service behind a VIP, port and protocol.
    pub fn find(&self, key: &ServiceKey) -> Option<(usize, &Service)> {
        self.index.get(key).map(|&i| (i, &self.services[i]))
    }

    /// Whether an address is a VIP of any service.
    pub fn is_vip(&self, a: IpAddr) -> bool {
        self.services.iter().any(|s| s.config.key.vip.ip() == a)
    }

    /// The VIP of the NAT service that has `rs` as a server over `proto`, if there is one: a
    /// packet from `rs` that missed is then a reply of one of its connections. (A server in
    /// several NAT services on the same port is taken as the first one's.)
    pub fn nat_vip_of(&self, rs: SocketAddr, proto: Proto) -> Option<SocketAddr> {
        self.services
            .iter()
            .find(|s| {
                s.config.forward == Forward::Nat
                    && s.config.key.proto == proto
                    && s.config.backends.iter().any(|b| b.addr == rs)
            })
            .map(|s| s.config.key.vip)
    }

    /// Whether an address is a LIP of any service.
    pub fn is_lip(&self, a: IpAddr) -> bool {
        self.services.iter().any(|s| s.config.local_addresses.contains(&a))
    }

    /// Every LIP, once.
    pub fn lips(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> =
            self.services.iter().flat_map(|s| s.config.local_addresses.iter().copied()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// No such service.
    NoService(ServiceKey),
    /// The service exists.
    ServiceExists(ServiceKey),
    /// No such server in the service.
    NoBackend(ServiceKey, SocketAddr),
    /// The server is in the service already.
    BackendExists(ServiceKey, SocketAddr),
    /// The service has no local address of the server's family.
    NoLocalAddress(ServiceKey, SocketAddr),
    /// A local address or a server of another family than the VIP's (Sluice does not translate
    /// between IPv4 and IPv6).
    MixedFamilies(ServiceKey, IpAddr),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::NoService(k) => write!(f, "no service {k}"),
            ServiceError::ServiceExists(k) => write!(f, "service {k} exists"),
            ServiceError::NoBackend(k, b) => write!(f, "service {k} has no real server {b}"),
            ServiceError::BackendExists(k, b) => write!(f, "service {k} already has real server {b}"),
            ServiceError::NoLocalAddress(k, b) => {
                write!(
                    f,
                    "service {k} has no local address of {b}'s family (FullNAT's LIP, TUN's tunnel source)"
                )
            }
            ServiceError::MixedFamilies(k, a) => write!(
                f,
                "service {k}: {a} is not of the VIP's family (a service's VIP, local addresses and \
                 servers are one family)"
            ),
        }
    }
}

impl std::error::Error for ServiceError {}

/// The control plane's services: configurations, health states and the counters that outlive
/// snapshots.
#[derive(Debug, Default)]
pub struct Services {
    configs: Vec<ServiceConfig>,
    /// Position of each service in `configs`.
    index: HashMap<ServiceKey, usize>,
    health: HashMap<(ServiceKey, SocketAddr), bool>,
    backend_stats: HashMap<(ServiceKey, SocketAddr), Arc<BackendStats>>,
    service_stats: HashMap<ServiceKey, Arc<ServiceStats>>,
    version: u64,
    /// Each service's scheduler as last built, with what it was built from and its epoch: a
    /// snapshot reuses it while those are the same (a health change elsewhere rebuilds only the
    /// service it touches, not every Maglev table of the appliance).
    built: HashMap<ServiceKey, BuiltScheduler>,
}

/// A scheduler as [`Services::snapshot`] built it.
#[derive(Debug)]
struct BuiltScheduler {
    config: ServiceConfig,
    up: Vec<bool>,
    scheduler: Box<dyn Scheduler>,
    epoch: u64,
}

impl Services {
    /// The configurations.
    pub fn configs(&self) -> &[ServiceConfig] {
        &self.configs
    }

    /// A real server's counters (shared by every snapshot), while it is configured.
    pub fn backend_stats(&self, key: &ServiceKey, addr: SocketAddr) -> Option<&Arc<BackendStats>> {
        self.backend_stats.get(&(*key, addr))
    }

    fn position(&self, key: &ServiceKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// A service is one family: its local addresses and servers are of its VIP's.
    fn check_families(cfg: &ServiceConfig) -> Result<(), ServiceError> {
        let v6 = cfg.key.vip.is_ipv6();
        let addresses = cfg.local_addresses.iter().copied().chain(cfg.backends.iter().map(|b| b.addr.ip()));
        for a in addresses {
            if a.is_ipv6() != v6 {
                return Err(ServiceError::MixedFamilies(cfg.key, a));
            }
        }
        if let Some(b) = cfg.backends.first()
            && cfg.local_addresses.is_empty()
            && matches!(cfg.forward, Forward::FullNat | Forward::Tun)
        {
            return Err(ServiceError::NoLocalAddress(cfg.key, b.addr));
        }
        Ok(())
    }

    /// Adds a service.
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), ServiceError> {
        if self.position(&cfg.key).is_some() {
            return Err(ServiceError::ServiceExists(cfg.key));
        }
        Self::check_families(&cfg)?;
        self.index.insert(cfg.key, self.configs.len());
        self.configs.push(cfg);
        Ok(())
    }

    /// Removes a service (its connections stay until they close; it takes no new ones).
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<ServiceConfig, ServiceError> {
        let i = self.position(key).ok_or(ServiceError::NoService(*key))?;
        let removed = self.configs.remove(i);
        self.index.remove(key);
        for (n, c) in self.configs.iter().enumerate().skip(i) {
            self.index.insert(c.key, n);
        }
        Ok(removed)
    }

    /// Replaces every service with `configs` (a reload), in linear time: the health states and
    /// counters of the services and servers that stay are kept, those of the others dropped.
    pub fn replace_all(&mut self, configs: Vec<ServiceConfig>) -> Result<(), ServiceError> {
        let mut index = HashMap::with_capacity(configs.len());
        for (n, c) in configs.iter().enumerate() {
            Self::check_families(c)?;
            if index.insert(c.key, n).is_some() {
                return Err(ServiceError::ServiceExists(c.key));
            }
        }
        let servers: std::collections::HashSet<(ServiceKey, SocketAddr)> =
            configs.iter().flat_map(|c| c.backends.iter().map(|b| (c.key, b.addr))).collect();
        self.health.retain(|k, _| servers.contains(k));
        self.backend_stats.retain(|k, _| servers.contains(k));
        self.service_stats.retain(|k, _| index.contains_key(k));
        self.configs = configs;
        self.index = index;
        Ok(())
    }

    /// Replaces a service's configuration (a reload), keeping its counters and health states.
    pub fn replace_service(&mut self, cfg: ServiceConfig) -> Result<(), ServiceError> {
        let i = self.position(&cfg.key).ok_or(ServiceError::NoService(cfg.key))?;
        Self::check_families(&cfg)?;
        self.configs[i] = cfg;
        Ok(())
    }

    /// Adds a real server.
    pub fn add_backend(&mut self, key: &ServiceKey, b: BackendConfig) -> Result<(), ServiceError> {
        let i = self.position(key).ok_or(ServiceError::NoService(*key))?;
        if self.configs[i].backends.iter().any(|x| x.addr == b.addr) {
            return Err(ServiceError::BackendExists(*key, b.addr));
        }
        if b.addr.is_ipv6() != key.vip.is_ipv6() {
            return Err(ServiceError::MixedFamilies(*key, b.addr.ip()));
        }
        let needs_lip = matches!(self.configs[i].forward, Forward::FullNat | Forward::Tun);
        if needs_lip && !self.configs[i].local_addresses.iter().any(|l| l.is_ipv6() == b.addr.is_ipv6()) {
            return Err(ServiceError::NoLocalAddress(*key, b.addr));
        }
        self.configs[i].backends.push(b);
        Ok(())
    }

    /// Removes a real server.
    pub fn del_backend(&mut self, key: &ServiceKey, addr: SocketAddr) -> Result<(), ServiceError> {
        let i = self.position(key).ok_or(ServiceError::NoService(*key))?;
        let before = self.configs[i].backends.len();
        self.configs[i].backends.retain(|b| b.addr != addr);
        if self.configs[i].backends.len() == before {
            return Err(ServiceError::NoBackend(*key, addr));
        }
        self.health.remove(&(*key, addr));
        self.backend_stats.remove(&(*key, addr));
        Ok(())
    }

    /// Changes a real server's weight (0 drains it).
    pub fn set_weight(
        &mut self,
        key: &ServiceKey,
        addr: SocketAddr,
        weight: u32,
    ) -> Result<(), ServiceError> {
        let i = self.position(key).ok_or(ServiceError::NoService(*key))?;
        let b = self.configs[i]
            .backends
            .iter_mut()
            .find(|b| b.addr == addr)
            .ok_or(ServiceError::NoBackend(*key, addr))?;
        b.weight = weight;
        Ok(())
    }

    /// Records a health state; returns whether it changed.
    pub fn set_health(&mut self, key: &ServiceKey, addr: SocketAddr, up: bool) -> bool {
        let old = self.health.insert((*key, addr), up);
        old != Some(up) && !(old.is_none() && up)
    }

    /// Whether a server passes its health check (a server never checked is up).
    pub fn is_up(&self, key: &ServiceKey, addr: SocketAddr) -> bool {
        self.health.get(&(*key, addr)).copied().unwrap_or(true)
    }

    /// A new snapshot of everything.
    pub fn snapshot(&mut self) -> Arc<ServiceTable> {
        self.version += 1;
        let mut table = ServiceTable { version: self.version, ..ServiceTable::default() };
        for cfg in &self.configs {
            let backends: Vec<Backend> = cfg
                .backends
                .iter()
                .map(|b| Backend {
                    addr: b.addr,
                    weight: b.weight,
                    up: self.health.get(&(cfg.key, b.addr)).copied().unwrap_or(true),
                    stats: self.backend_stats.entry((cfg.key, b.addr)).or_default().clone(),
                    id: hash_endpoint(b.addr),
                })
                .collect();
            let up: Vec<bool> = backends.iter().map(|b| b.up).collect();
            let reusable = self.built.get(&cfg.key).filter(|b| b.config == *cfg && b.up == up);
            let (scheduler, scheduler_epoch) = match reusable {
                Some(b) => (b.scheduler.clone_box(), b.epoch),
                None => {
                    let views: Vec<BackendView> = backends.iter().map(view).collect();
                    let scheduler = sched::build(cfg.scheduler, &views);
                    let epoch = self.version;
                    let built =
                        BuiltScheduler { config: cfg.clone(), up, scheduler: scheduler.clone_box(), epoch };
                    self.built.insert(cfg.key, built);
                    (scheduler, epoch)
                }
            };
            let stats = self.service_stats.entry(cfg.key).or_default().clone();
            table.index.insert(cfg.key, table.services.len());
            table.services.push(Service { config: cfg.clone(), backends, scheduler, scheduler_epoch, stats });
        }
        let configs = &self.configs;
        self.built.retain(|key, _| configs.iter().any(|c| c.key == *key));
        Arc::new(table)
    }
}

/// A worker's schedulers for snapshot `new`, given its copies `old` of snapshot `was`'s (in
/// `was`'s order): a service whose scheduler `new` carried over (same key, same epoch) keeps
/// the worker's copy and its position; every other service gets a fresh copy of `new`'s.
pub fn carry_schedulers(
    was: &ServiceTable,
    old: Vec<Box<dyn Scheduler>>,
    new: &ServiceTable,
) -> Vec<Box<dyn Scheduler>> {
    let mut old: Vec<Option<Box<dyn Scheduler>>> = old.into_iter().map(Some).collect();
    new.services
        .iter()
        .map(|s| {
            let kept = was.find(&s.config.key).and_then(|(i, prev)| {
                (prev.scheduler_epoch == s.scheduler_epoch)
                    .then(|| old.get_mut(i).and_then(Option::take))
                    .flatten()
            });
            kept.unwrap_or_else(|| s.scheduler.clone_box())
        })
        .collect()
}

#[cfg(test)]
mod tests;
