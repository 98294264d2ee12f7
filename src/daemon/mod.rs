//! `sluice run`: the appliance daemon.
//!
//! It reads and checks the configuration, opens the NIC on its transport (the in-process model
//! by default), builds the slow path over it, makes the host's interface (TAP) of each port,
//! starts the health checks, the control socket and the metrics endpoint, then runs the main
//! loop: poll the engine, answer the listeners, apply health changes, reload on SIGHUP, stop on
//! SIGTERM or SIGINT. The engine is touched by the main loop only; listeners and health checks
//! talk to it over channels.
//!
//! Submodules: `setup` (configuration to engine and device), `server` (the listeners),
//! `report` (replies and Prometheus text), `tap` (the host's interfaces), `cluster` (`[sync]`
//! in the loop: received events, peers' liveness), `reload` (SIGHUP and `sluice reload`).

mod cluster;
pub mod probe;
mod reload;
pub mod report;
pub mod server;
pub mod setup;
pub mod tap;
pub mod traffic;

use crate::config::{self, Config};
use crate::control::proto::{Request, Response, ServiceSpec};
use anyhow::Context;
use rtl_spec::clock::{Clock, SystemClock};
use server::{Answer, Call, Envelope};
use slowpath::engine::Engine;
use slowpath::health::{HealthChecker, Target};
use slowpath::service::{BackendConfig, ServiceKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use traffic::RateMeter;

/// The running daemon.
struct Daemon {
    config_path: PathBuf,
    cfg: Config,
    engine: Engine,
    describe: String,
    started: Instant,
    clock: Arc<dyn Clock>,
    health: Option<HealthChecker>,
    rates: RateMeter,
    reload: Option<reload::Reload>,
    /// `[routing]`: the VIPs and LIPs announced through BIRD.
    routing: Option<crate::routing::Announcer>,
    /// `[[probe]]`: end-to-end checks of VIPs.
    probes: Option<probe::Prober>,
    /// `[sync]`: connection sync with the other nodes.
    sync: Option<cluster::SyncTick>,
}

/// Runs the daemon until SIGTERM. Configuration errors exit 2, everything else that stops it
/// exits 1.
pub fn run(config_path: &Path, transport: Option<&str>) -> ExitCode {
    let loaded = config::load_with_transport(config_path, transport);
    let cfg = match loaded
        .and_then(|c| config::check_interfaces(&c).and_then(|()| config::check_paths(&c)).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: {e}");
            return e.exit_code();
        }
    };
    match start(config_path, cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            // A port's interface, queue or permissions are bad input too.
            if e.downcast_ref::<setup::BadPortSetting>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn start(config_path: &Path, cfg: Config) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let setup::Device { mut engine, describe, mut wake_fds } = setup::open(&cfg, &clock)?;
    let (taps, tap_fds) = attach_taps(&cfg, &mut engine);
    let sync = cluster::start_sync(&cfg, &mut engine)?;
    // With the model in this loop, an idle loop sleeps on its ports and the host interfaces.
    if !wake_fds.is_empty() {
        wake_fds.extend(tap_fds);
    }
    let (calls_tx, calls) = crossbeam_channel::bounded::<Envelope>(256);
    let _socket = server::control(&cfg.control.socket, calls_tx.clone())?;
    let metrics = server::metrics(cfg.control.metrics, calls_tx)?;
    let mut d = Daemon {
        config_path: config_path.to_path_buf(),
        rates: RateMeter::new(&mut engine),
        health: None,
        reload: None,
        routing: crate::routing::Announcer::for_config(&cfg)?,
        probes: probe::Prober::start(&cfg.probes),
        sync,
        cfg,
        engine,
        describe,
        started: Instant::now(),
        clock,
    };
    d.restart_health();
    eprintln!(
        "sluice run: ready: {} with {} port(s), {} service(s), {} worker(s){}; control {}, metrics http://{metrics}/metrics",
        d.describe,
        d.cfg.ports.len(),
        d.cfg.services.len(),
        d.cfg.device.workers,
        if taps.is_empty() { String::new() } else { format!(", host interfaces {}", taps.join(" ")) },
        d.cfg.control.socket.display(),
    );
    let mut idle_rounds = 0u32;
    let interrupts = d.engine.flows().nic_ref().has_interrupts();
    while !stop.load(Ordering::Relaxed) {
        let now = d.clock.now_ns();
        let mut work = d.engine.poll(now);
        while let Ok((call, reply)) = calls.try_recv() {
            work += 1;
            if matches!(call, Call::Control(Request::Reload)) {
                d.start_reload(Some(reply));
                continue;
            }
            let answer = d.answer(call);
            let _ = reply.send(answer);
        }
        work += d.finish_reload();
        work += d.tick_sync(now);
        if let Some(h) = &d.health {
            while let Ok(t) = h.events().try_recv() {
                d.engine.set_health(&t.service, t.backend, t.up);
            }
        }
        if hup.swap(false, Ordering::Relaxed) {
            d.start_reload(None);
        }
        d.rates.tick(&mut d.engine);
        d.tick_routing();
        if let Some(e) = d.given_up() {
            d.stop_checks_and_routing();
            return Err(e);
        }
        // Busy-poll while there is work and for a while after (a packet's round trip through
        // the servers is tens of microseconds: sleeping at once would add that to every RTT);
        // back off to short sleeps when idle, so an idle appliance does not burn its core.
        if work == 0 {
            idle_rounds = idle_rounds.saturating_add(1);
            if interrupts && idle_rounds > 64 {
                // `[device] interrupts = true`: sleep on the rings' MSI-X eventfds (armed
                // after each drain) instead of spinning; timers still run every millisecond.
                d.engine.flows().nic().wait_any(Duration::from_millis(1));
            } else if idle_rounds > 20_000 {
                if wake_fds.is_empty() {
                    std::thread::sleep(Duration::from_micros(100));
                } else {
                    // Woken at once by a frame on a port or from the host; the timers and the
                    // control socket wait a millisecond at most.
                    wait_readable(&wake_fds, Duration::from_millis(1));
                }
            } else if idle_rounds > 2_000 {
                std::thread::yield_now();
            }
        } else {
            idle_rounds = 0;
        }
    }
    eprintln!("sluice run: stopping");
    d.stop_checks_and_routing();
    if let Some(f) = d.engine.flows_ref().fault() {
        // Stopped while the NIC was lost: not a clean stop, whatever asked for it.
        anyhow::bail!(
            "stopped while the NIC ({}) was lost ({} s, last error: {})",
            d.describe,
            f.duration().as_secs(),
            f.last_error
        );
    }
    Ok(())
}

/// Sleeps until one of `fds` polls readable or `timeout` passes.
fn wait_readable(fds: &[std::os::fd::RawFd], timeout: Duration) {
    let mut polls: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ts = libc::timespec { tv_sec: 0, tv_nsec: libc::c_long::from(timeout.subsec_nanos()) };
    // SAFETY: `polls` holds live pollfd entries and `ts` a live timespec; ppoll writes only the
    // entries' `revents`.
    unsafe { libc::ppoll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, &raw const ts, std::ptr::null()) };
}

/// Makes the host's interface of every port with addresses (when `[host] tap` is on); returns
/// their names and descriptors.
fn attach_taps(cfg: &Config, engine: &mut Engine) -> (Vec<String>, Vec<std::os::fd::RawFd>) {
    let mut made = Vec::new();
    let mut fds = Vec::new();
    if !cfg.host.tap {
        return (made, fds);
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        if p.addresses.is_empty() {
            continue;
        }
        let name = format!("{}{}", cfg.host.tap_prefix, p.name);
        match tap::Tap::create(&name, setup::port_mac(cfg, i), p.mtu, &p.addresses) {
            Ok(t) => {
                made.push(t.name().to_string());
                fds.push(t.fd());
                engine.attach_host(i as u8, Box::new(t));
            }
            Err(e) => tracing::warn!(
                port = %p.name,
                error = %e,
                "no host interface: the port's own addresses answer ARP but carry no host traffic (health checks use the host's other routes)"
            ),
        }
    }
    (made, fds)
}

impl Daemon {
    /// `[routing]`: recomputes what is announced (the services' health, the NIC's state).
    fn tick_routing(&mut self) {
        if let Some(r) = &mut self.routing {
            r.tick(self.engine.services(), self.engine.flows_ref().fault().is_none());
        }
    }

    /// Stops the health checks and withdraws every route (`[routing]`) before the daemon stops.
    fn stop_checks_and_routing(&mut self) {
        if let Some(h) = self.health.take() {
            h.stop();
        }
        if let Some(p) = self.probes.take() {
            p.stop();
        }
        if let Some(r) = self.routing.take() {
            r.stop();
        }
        if let Some(s) = self.sync.take() {
            s.stop();
        }
    }

    fn answer(&mut self, call: Call) -> Answer {
        match call {
            Call::Metrics => {
                let mut svc = report::services(&self.engine, self.probe_status());
                self.rates.fill(&mut svc);
                let st = self.stats();
                let mut text = report::prometheus(&svc, &st);
                if let Some(r) = &self.routing {
                    text.push_str(&r.metrics());
                }
                if let Some(s) = self.sync_status() {
                    text.push_str(&crate::sync::metrics(&s));
                }
                Answer::Metrics(text)
            }
            Call::Control(req) => Answer::Control(self.control(req)),
        }
    }

    fn stats(&mut self) -> crate::control::proto::StatsReply {
        let st = self.engine.stats();
        let mut reply = report::stats(
            &self.engine,
            &st,
            &self.describe,
            self.started.elapsed().as_secs(),
            self.rates.rates.clone(),
        );
        reply.device_state.give_up_s = u64::from(self.cfg.device.give_up_s);
        reply.servers = self.rates.servers();
        reply
    }

    /// An error when the NIC has been lost for longer than `device.give_up_s`.
    fn given_up(&self) -> Option<anyhow::Error> {
        let give_up = self.cfg.device.give_up_s;
        let f = self.engine.flows_ref().fault()?;
        (give_up > 0 && f.duration() >= Duration::from_secs(u64::from(give_up))).then(|| {
            anyhow::anyhow!(
                "the NIC ({}) has been lost for {} s (device.give_up_s), {} attempt(s) to bring it back failed, \
                 the last with: {}; exiting so that it can be restarted",
                self.describe,
                give_up,
                f.attempts,
                f.last_error
            )
        })
    }

    fn control(&mut self, req: Request) -> Response {
        let changes = matches!(
            req,
            Request::ServiceAdd(_)
                | Request::ServiceDel { .. }
                | Request::BackendAdd { .. }
                | Request::BackendDel { .. }
                | Request::BackendSet { .. }
        );
        let resp = match req {
            Request::Services => {
                let mut svc = report::services(&self.engine, self.probe_status());
                self.rates.fill(&mut svc);
                Response::ok(svc)
            }
            Request::Flows(f) => Response::ok(report::flows(&mut self.engine, &f)),
            Request::Stats => Response::ok(self.stats()),
            Request::DeviceInfo => Response::ok(self.engine.flows().nic_ref().info()),
            Request::Cluster => match (&self.routing, self.sync_status()) {
                (None, None) => Response::invalid(
                    "no [routing] and no [sync] in the configuration: this node is not in a cluster",
                ),
                (r, sync) => Response::ok(crate::routing::ClusterReply {
                    sync,
                    ..r.as_ref().map(crate::routing::Announcer::status).unwrap_or_default()
                }),
            },
            // Answered by the main loop once the file is read and checked off this thread.
            Request::Reload => Response::err("a reload is answered when it is applied"),
            Request::ServiceAdd(spec) => self.service_add(&spec),
            Request::ServiceDel { vip, protocol, reset } => match self.find_service(&vip, &protocol) {
                Ok(i) => {
                    let key = service_key(&self.cfg.services[i]);
                    let r = self.engine.del_service(&key, reset);
                    if r.is_ok() {
                        self.cfg.services.remove(i);
                    }
                    done(r)
                }
                Err(e) => Response::invalid(e),
            },
            Request::BackendAdd { vip, protocol, address, weight } => {
                match self.find_service(&vip, &protocol).and_then(|i| {
                    let b = config::backend_at_run_time(&self.cfg, &self.cfg.services[i], &address, weight)?;
                    Ok((i, b))
                }) {
                    Ok((i, b)) => {
                        let key = service_key(&self.cfg.services[i]);
                        let r = self.engine.add_backend(
                            &key,
                            BackendConfig { addr: b.address, weight: u32::from(b.weight) },
                        );
                        if r.is_ok() {
                            self.cfg.services[i].backends.push(b);
                        }
                        done(r)
                    }
                    Err(e) => Response::invalid(e),
                }
            }
            Request::BackendDel { vip, protocol, address, reset } => {
                match self
                    .find_service(&vip, &protocol)
                    .and_then(|i| Ok((i, self.find_backend(i, &address)?)))
                {
                    Ok((i, j)) => {
                        let key = service_key(&self.cfg.services[i]);
                        let r =
                            self.engine.del_backend(&key, self.cfg.services[i].backends[j].address, reset);
                        if r.is_ok() {
                            self.cfg.services[i].backends.remove(j);
                        }
                        done(r)
                    }
                    Err(e) => Response::invalid(e),
                }
            }
            Request::BackendSet { vip, protocol, address, weight } => {
                match self.find_service(&vip, &protocol).and_then(|i| {
                    let j = self.find_backend(i, &address)?;
                    Ok((i, j, config::weight_at_run_time(weight)?))
                }) {
                    Ok((i, j, w)) => {
                        let key = service_key(&self.cfg.services[i]);
                        let addr = self.cfg.services[i].backends[j].address;
                        let r = self.engine.set_weight(&key, addr, u32::from(w));
                        if r.is_ok() {
                            self.cfg.services[i].backends[j].weight = w;
                        }
                        done(r)
                    }
                    Err(e) => Response::invalid(e),
                }
            }
        };
        if changes && resp.ok {
            self.restart_health();
        }
        resp
    }

    /// `sluice service add`: checked as the file's services are, against the running
    /// configuration (which then holds it, so later changes are checked against it too).
    fn service_add(&mut self, spec: &ServiceSpec) -> Response {
        let svc = match config::service_at_run_time(
            &self.cfg,
            &spec.vip,
            &spec.protocol,
            &spec.scheduler,
            (&spec.forward, spec.nat_gateway.as_deref()),
            &spec.local_addresses,
            spec.conn_limit,
            spec.synproxy,
            spec.proxy_protocol.as_deref(),
        ) {
            Ok(s) => s,
            Err(e) => return Response::invalid(e),
        };
        let r = self.engine.add_service(setup::service(&svc));
        if r.is_ok() {
            self.cfg.services.push(svc);
        }
        done(r)
    }

    /// The running service named by a request.
    fn find_service(&self, vip: &str, protocol: &str) -> Result<usize, String> {
        let (vip, proto) = key(vip, protocol)?;
        self.cfg
            .services
            .iter()
            .position(|s| s.vip == vip && s.protocol == proto)
            .ok_or_else(|| format!("no service {vip}/{proto}"))
    }

    /// A server of the running service `i`, named by a request.
    fn find_backend(&self, i: usize, address: &str) -> Result<usize, String> {
        let a = addr(address)?;
        let s = &self.cfg.services[i];
        s.backends
            .iter()
            .position(|b| b.address == a)
            .ok_or_else(|| format!("service {} has no real server {a}", s.name()))
    }

    /// `[[probe]]`: every probe's state now.
    fn probe_status(&self) -> Vec<crate::control::proto::ProbeInfo> {
        self.probes.as_ref().map(probe::Prober::status).unwrap_or_default()
    }

    /// (Re)starts the health checks of every server whose service has one, each from the
    /// state it is in now.
    fn restart_health(&mut self) {
        if let Some(h) = self.health.take() {
            h.stop();
        }
        let targets: Vec<Target> = self
            .engine
            .services()
            .services
            .iter()
            .filter_map(|s| s.config.health.clone().map(|h| (s, h)))
            .flat_map(|(s, h)| {
                s.backends.iter().map(move |b| Target {
                    service: s.config.key,
                    backend: b.addr,
                    check: h.clone(),
                    up: b.up,
                })
            })
            .collect();
        if !targets.is_empty() {
            self.health = Some(HealthChecker::start(targets));
        }
    }
}

fn done(r: Result<(), slowpath::engine::EngineError>) -> Response {
    match r {
        Ok(()) => Response::ok(serde_json::Value::Null),
        Err(e @ slowpath::engine::EngineError::Service(_)) => Response::invalid(e),
        Err(e) => Response::err(e),
    }
}

fn service_key(s: &config::Service) -> ServiceKey {
    ServiceKey { vip: s.vip, proto: setup::proto(s.protocol) }
}

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?}: expected an address with a port, like 10.10.2.11:80 or [fd00::11]:80"))
}

fn key(vip: &str, protocol: &str) -> Result<(SocketAddr, config::Protocol), String> {
    let proto = match protocol {
        "tcp" => config::Protocol::Tcp,
        "udp" => config::Protocol::Udp,
        p => return Err(format!("protocol {p:?}: expected tcp or udp")),
    };
    Ok((addr(vip)?, proto))
}
