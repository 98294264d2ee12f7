//! Routes: what the connections to one server of one service through one local address
//! share (addresses, protocol, mode, counters), held once per worker with a count of users.

use super::NewConn;
use crate::addr::FastMap;
use crate::service::{BackendStats, Forward, Proto, ServiceKey, ServiceStats};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the connections to one server of one service through one local address share: held
/// once in the store, with a count of the connections that use it, so that a connection keeps
/// 4 bytes instead of three addresses, two ports and two `Arc`s. The counters outlive a
/// configuration reload for as long as one of its connections does.
#[derive(Clone, Debug)]
pub struct Route {
    /// The virtual service's address and port.
    pub vip: SocketAddr,
    /// The real server.
    pub rs: SocketAddr,
    /// The local address toward the server.
    pub lip: std::net::IpAddr,
    /// TCP or UDP.
    pub proto: Proto,
    /// How its connections are forwarded (the service's mode when they were created).
    pub forward: Forward,
    /// The server's counters.
    pub backend_stats: Arc<BackendStats>,
    /// The service's counters.
    pub service_stats: Arc<ServiceStats>,
}

impl Route {
    /// The service its connections belong to.
    pub fn service(&self) -> ServiceKey {
        ServiceKey { vip: self.vip, proto: self.proto }
    }
}

/// A connection's [`Route`] as the store lends it, with the store's IPv6 clients' addresses,
/// which [`super::Conn::ep`] reads an IPv6 connection's client from. Dereferences to the route.
#[derive(Clone, Copy, Debug)]
pub struct RouteRef<'a> {
    pub(super) route: &'a Route,
    pub(super) clients: &'a super::V6Clients,
}

impl std::ops::Deref for RouteRef<'_> {
    type Target = Route;

    fn deref(&self) -> &Route {
        self.route
    }
}

/// What makes two connections share a [`Route`]: the counters (by identity) and the addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct RouteKey {
    backend_stats: usize,
    service_stats: usize,
    vip: SocketAddr,
    rs: SocketAddr,
    lip: std::net::IpAddr,
    proto: Proto,
    forward: Forward,
}

/// The store's routes, each held once with the number of connections that use it.
#[derive(Debug, Default)]
pub(super) struct Routes {
    pub(super) entries: Vec<Option<(Route, u32)>>,
    pub(super) by_key: FastMap<RouteKey, u32>,
    free: Vec<u32>,
}

impl Routes {
    fn key(r: &Route) -> RouteKey {
        RouteKey {
            backend_stats: Arc::as_ptr(&r.backend_stats) as usize,
            service_stats: Arc::as_ptr(&r.service_stats) as usize,
            vip: r.vip,
            rs: r.rs,
            lip: r.lip,
            proto: r.proto,
            forward: r.forward,
        }
    }

    /// The reference of the route of a new connection to `ep` (one more user of it).
    pub(super) fn acquire(&mut self, n: &NewConn<'_>) -> u32 {
        let ep = &n.ep;
        let key = RouteKey {
            backend_stats: Arc::as_ptr(n.backend_stats) as usize,
            service_stats: Arc::as_ptr(n.service_stats) as usize,
            vip: ep.vip,
            rs: ep.rs,
            lip: ep.lip.ip(),
            proto: n.proto,
            forward: n.forward,
        };
        if let Some(&id) = self.by_key.get(&key) {
            if let Some(Some(e)) = self.entries.get_mut(id as usize) {
                e.1 += 1;
                return id;
            }
        }
        let route = Route {
            vip: ep.vip,
            rs: ep.rs,
            lip: ep.lip.ip(),
            proto: n.proto,
            forward: n.forward,
            backend_stats: n.backend_stats.clone(),
            service_stats: n.service_stats.clone(),
        };
        let entry = Some((route, 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.by_key.insert(key, id);
        id
    }

    /// One user fewer of route `id`; the route is dropped with its last user.
    pub(super) fn release(&mut self, id: u32) {
        let Some(slot) = self.entries.get_mut(id as usize) else { return };
        let Some(e) = slot.as_mut() else { return };
        e.1 -= 1;
        if e.1 == 0 {
            let key = Self::key(&e.0);
            self.by_key.remove(&key);
            *slot = None;
            self.free.push(id);
        }
    }

    pub(super) fn get(&self, id: u32) -> Option<&Route> {
        self.entries.get(id as usize)?.as_ref().map(|(r, _)| r)
    }
}
