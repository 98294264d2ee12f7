//! The operator's commands that talk to a running daemon over its control socket:
//! `sluice services`, `flows`, `stats`, `top`, `service add|del`, `backend add|del|set` and
//! `reload`. This module owns their command lines (clap), the choice of socket, the
//! client-side checks and the exit codes; [`client`] owns the connection, [`mod@format`] the text
//! an operator reads, [`top`] the live view.
//!
//! # The socket
//! Every command takes `--socket PATH`, or `--config FILE` to read `[control] socket` from the
//! daemon's configuration; without either, `/run/sluice/sluice.sock`.
//!
//! # Output
//! Text is laid out as ipvsadm's (`-L -n`, `-L -n --stats`, `-L -n -c`) with DPVS's
//! additions (worker, local address). `--json` prints the response's `data` exactly as the
//! daemon wrote it: compact, one line, then a newline (one reply per line is what scripts
//! and `jq` read best); for a change (`service`, `backend`, `reload`) that is the daemon's
//! `data`, usually `null`. Without `--json` a change prints nothing (`reload` prints
//! `reloaded`).
//!
//! # Exit codes
//! 0 done; 1 a failure: no daemon, no answer, or the daemon could not do it (`sluice: <its
//! error>`); 2 bad usage or input, caught here (clap's convention: an address, a state, a
//! configuration file that cannot be read, `top` without a terminal) or by the daemon's checks
//! (a weight out of range, a backend of another family than its VIP, a reload of a file that
//! does not check: the reply's `bad_input`).

pub mod client;
pub mod format;
#[cfg(test)]
mod tests;
pub mod top;

use crate::control::proto::{FlowFilter, FlowsReply, Request, ServiceSpec, ServicesReply, StatsReply};
use clap::{Args, Subcommand, ValueEnum};
use client::{Client, ClientError, Reply};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

/// The commands that talk to a daemon (flattened into `sluice`'s own).
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// The services and their real servers, as `ipvsadm -L -n` shows them.
    Services(ServicesArgs),
    /// The connections, as `ipvsadm -L -n -c` shows them, with worker, local address and where
    /// they are forwarded (nic or host).
    Flows(FlowsArgs),
    /// Every counter: ports, NIC, punts and drops by reason, flow table, slow path, rates.
    Stats(StatsArgs),
    /// A live view of the rates, the flow table and the busiest VIPs (q quits).
    Top(TopArgs),
    /// Add or remove a service: `sluice service add -t VIP:PORT -s wlc -z LIP`.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Add, remove or reweigh a real server: `sluice backend add -t VIP:PORT -r RS:PORT -w 3`.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Make the daemon reread its configuration file (as SIGHUP does).
    Reload(ReloadArgs),
    /// The routes this node announces through BIRD and BIRD's sessions ([routing]).
    Cluster(ClusterArgs),
}

/// Which daemon: `--socket PATH`, or `--config FILE` for its `[control] socket`.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// The daemon's control socket [default: /run/sluice/sluice.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub socket: Option<PathBuf>,
    /// Read the control socket from this configuration file ([control] socket).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `sluice services`.
// Each bool is an independent ipvsadm-style flag.
#[allow(clippy::struct_excessive_bools)]
#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Connections, packets and bytes per service and server (ipvsadm's --stats).
    #[arg(long)]
    pub stats: bool,
    /// With --stats: exact byte counts instead of 1.2K, 15.0M.
    #[arg(long, requires = "stats")]
    pub exact: bool,
    /// Connections, packets and bytes per second per service and server over the daemon's
    /// last reporting interval (ipvsadm's --rate: CPS, InPPS, OutPPS, InBPS, OutBPS).
    #[arg(long)]
    pub rate: bool,
    /// Print the daemon's reply as JSON (one line).
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice flows`.
#[derive(Args, Debug)]
pub struct FlowsArgs {
    /// Only connections to this VIP (ADDR or ADDR:PORT, [fd00::1]:80).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_address)]
    pub vip: Option<Address>,
    /// Only connections to this real server (ADDR or ADDR:PORT).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_address)]
    pub backend: Option<Address>,
    /// Only connections in this state: ESTABLISHED SYN_RECV FIN_WAIT CLOSE_WAIT LAST_ACK
    /// TIME_WAIT CLOSE UDP (any case).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<String>,
    /// At most N connections (the footer gives the total).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print the daemon's reply as JSON (one line).
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print the daemon's reply as JSON (one line), every counter included.
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Milliseconds between refreshes.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub interval_ms: u64,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Print the daemon's reply as JSON (one line).
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice reload`.
#[derive(Args, Debug)]
pub struct ReloadArgs {
    /// Print the daemon's reply data as JSON instead of "reloaded".
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// A service's protocol.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// "tcp" or "udp", as the protocol writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Which service: `--vip VIP:PORT [--protocol tcp|udp]`, or ipvsadm's `-t VIP:PORT` /
/// `-u VIP:PORT`.
#[derive(Args, Debug, Clone)]
#[group(skip)]
pub struct ServiceKey {
    /// The service's VIP and port: 10.10.1.100:80, [fd00::1]:80.
    #[arg(long, value_name = "VIP:PORT", value_parser = parse_endpoint,
          required_unless_present_any = ["tcp", "udp"], conflicts_with_all = ["tcp", "udp"])]
    pub vip: Option<SocketAddr>,
    /// The service's protocol, with --vip.
    #[arg(long, value_enum, ignore_case = true, default_value_t, conflicts_with_all = ["tcp", "udp"])]
    pub protocol: Protocol,
    /// A TCP service (ipvsadm's -t): --vip VIP:PORT --protocol tcp.
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT", value_parser = parse_endpoint, conflicts_with = "udp")]
    pub tcp: Option<SocketAddr>,
    /// A UDP service (ipvsadm's -u): --vip VIP:PORT --protocol udp.
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT", value_parser = parse_endpoint)]
    pub udp: Option<SocketAddr>,
}

impl ServiceKey {
    /// The VIP:PORT and protocol named.
    pub fn resolve(&self) -> (SocketAddr, Protocol) {
        match (self.tcp, self.udp, self.vip) {
            (Some(t), ..) => (t, Protocol::Tcp),
            (None, Some(u), _) => (u, Protocol::Udp),
            (None, None, Some(v)) => (v, self.protocol),
            // clap requires one of the three.
            (None, None, None) => (SocketAddr::from(([0, 0, 0, 0], 0)), self.protocol),
        }
    }
}

/// `sluice service …`.
#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Add a service: `--vip VIP:PORT` (or -t/-u), its scheduler and its local addresses.
    Add(ServiceAddArgs),
    /// Remove a service; its connections end on their own unless --reset.
    Del(ServiceDelArgs),
}

/// `sluice service add`.
#[derive(Args, Debug)]
pub struct ServiceAddArgs {
    /// The service (`-t`/`-u VIP:PORT`).
    #[command(flatten)]
    pub service: ServiceKey,
    /// The scheduler (IPVS's names).
    #[arg(short = 's', long, default_value = "wlc", value_parser = ["rr", "wrr", "lc", "wlc", "sh", "mh"])]
    pub scheduler: String,
    /// How connections reach the servers: fullnat (default), nat (ipvsadm -m), dr (-g) or tun
    /// (-i).
    #[arg(long, value_name = "MODE", default_value = "fullnat", value_parser = ["fullnat", "nat", "dr", "tun"])]
    pub forward: String,
    /// With `--forward nat`: the port address the servers route their replies through.
    #[arg(long, value_name = "ADDR")]
    pub nat_gateway: Option<IpAddr>,
    /// A local address (FullNAT's LIP, TUN's tunnel source; none for nat and dr); repeat it or
    /// separate with commas (DPVS's -z).
    #[arg(short = 'z', long = "local-address", value_name = "LIP", value_delimiter = ',')]
    pub local_addresses: Vec<IpAddr>,
    /// At most N connections (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub conn_limit: u32,
    /// Answer SYNs with SYN cookies; open toward a server only for clients that prove their
    /// address (TCP only).
    #[arg(long)]
    pub synproxy: bool,
    /// Tell the servers the client's address and port: `v2` (a PROXY protocol v2 header at the
    /// start of the server-side stream) or `toa` (LVS's TCP option 254, IPv4 only); TCP, not
    /// with --synproxy.
    #[arg(long, value_name = "v2|toa")]
    pub proxy_protocol: Option<String>,
    /// Print the daemon's reply data as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice service del`.
#[derive(Args, Debug)]
pub struct ServiceDelArgs {
    /// The service (`-t`/`-u VIP:PORT`).
    #[command(flatten)]
    pub service: ServiceKey,
    /// Cut its connections (their next packets get a reset) instead of letting them end.
    #[arg(long)]
    pub reset: bool,
    /// Print the daemon's reply data as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice backend …`.
#[derive(Subcommand, Debug)]
pub enum BackendCommand {
    /// Add a real server to a service.
    Add(BackendAddArgs),
    /// Remove a real server; its connections end on their own unless --reset.
    Del(BackendDelArgs),
    /// Change a real server's weight (0 drains it: no new connections).
    Set(BackendSetArgs),
}

/// Which real server of which service.
#[derive(Args, Debug, Clone)]
#[group(skip)]
pub struct BackendKey {
    /// The service (`-t`/`-u VIP:PORT`).
    #[command(flatten)]
    pub service: ServiceKey,
    /// The real server: ADDR:PORT, or ADDR for the service's own port (ipvsadm's -r).
    #[arg(short = 'r', long = "address", visible_alias = "real-server", value_name = "RS[:PORT]",
          value_parser = parse_address)]
    pub address: Address,
}

impl BackendKey {
    /// The service's VIP:PORT, its protocol and the server's ADDR:PORT, as the protocol
    /// writes them. A server given without a port takes the service's (ipvsadm's rule).
    pub fn resolve(&self) -> (String, String, String) {
        let (vip, protocol) = self.service.resolve();
        let address = SocketAddr::new(self.address.ip, self.address.port.unwrap_or(vip.port()));
        (vip.to_string(), protocol.as_str().to_owned(), address.to_string())
    }
}

/// `sluice backend add`.
#[derive(Args, Debug)]
pub struct BackendAddArgs {
    /// The service and the real server.
    #[command(flatten)]
    pub backend: BackendKey,
    /// Weight, 0..=65535 (0: added drained).
    #[arg(short = 'w', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub weight: u32,
    /// Print the daemon's reply data as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice backend del`.
#[derive(Args, Debug)]
pub struct BackendDelArgs {
    /// The service and the real server.
    #[command(flatten)]
    pub backend: BackendKey,
    /// Cut its connections (their next packets get a reset) instead of letting them end.
    #[arg(long)]
    pub reset: bool,
    /// Print the daemon's reply data as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// `sluice backend set`.
#[derive(Args, Debug)]
pub struct BackendSetArgs {
    /// The service and the real server.
    #[command(flatten)]
    pub backend: BackendKey,
    /// The new weight, 0..=65535 (0 drains: no new connections, the current ones go on).
    #[arg(short = 'w', long, required = true, value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub weight: u32,
    /// Print the daemon's reply data as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which daemon to ask (`--socket`, or the one `--config` names).
    #[command(flatten)]
    pub target: Target,
}

/// An address with or without a port, as `--vip`, `--backend` and `-r` take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// The port, when given.
    pub port: Option<u16>,
}

impl std::fmt::Display for Address {
    /// `10.10.1.100`, `fd00::1`, `10.10.1.100:80`, `[fd00::1]:80`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// `ADDR` or `ADDR:PORT` (`[V6]:PORT`, `[V6]` too).
pub fn parse_address(s: &str) -> Result<Address, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Address { ip: a.ip(), port: Some(a.port()) });
    }
    let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    bare.parse::<IpAddr>().map(|ip| Address { ip, port: None }).map_err(|_| {
        "expected an address with or without a port, like 10.10.1.100, 10.10.1.100:80 or [fd00::1]:80".into()
    })
}

/// `ADDR:PORT` (`[V6]:PORT`).
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| "expected an address and port, like 10.10.1.100:80 or [fd00::1]:80".into())
}

/// The states `--state` accepts, as the daemon writes them.
pub const STATES: [&str; 8] =
    ["ESTABLISHED", "SYN_RECV", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "UDP"];

/// A connection state in any case, given back in upper case.
pub fn parse_state(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    if STATES.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(format!("expected one of {}", STATES.join(" ")))
    }
}

/// Why a command did not succeed, and so its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or input (exit 2).
    Usage(String),
    /// The work failed, or the daemon refused it (exit 1).
    Failed(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Failed(e.to_string())
    }
}

/// Runs a command, printing what it prints and any error as `sluice: …` on stderr.
pub fn run(cmd: CliCommand) -> ExitCode {
    match dispatch(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("sluice: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("sluice: {m}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: CliCommand) -> Result<(), Failure> {
    match cmd {
        CliCommand::Services(a) => {
            let reply = ask(&a.target, &Request::Services)?;
            if a.json {
                return print_json(&reply);
            }
            let data: ServicesReply = decode(&reply)?;
            let mut text = String::new();
            if a.stats {
                text.push_str(&format::services_stats(&data, a.exact));
            }
            if a.rate {
                text.push_str(&format::services_rate(&data));
            }
            if !a.stats && !a.rate {
                text = format::services(&data);
            }
            print(&text)
        }
        CliCommand::Flows(a) => {
            let filter = FlowFilter {
                vip: a.vip.map(|v| v.to_string()),
                backend: a.backend.map(|b| b.to_string()),
                state: a.state,
                limit: a.limit,
            };
            let reply = ask(&a.target, &Request::Flows(filter))?;
            if a.json {
                return print_json(&reply);
            }
            print(&format::flows(&decode::<FlowsReply>(&reply)?))
        }
        CliCommand::Stats(a) => {
            let reply = ask(&a.target, &Request::Stats)?;
            if a.json {
                return print_json(&reply);
            }
            print(&format::stats(&decode::<StatsReply>(&reply)?))
        }
        CliCommand::Top(a) => {
            top::run(&socket_path(&a.target)?, std::time::Duration::from_millis(a.interval_ms))
        }
        CliCommand::Service(ServiceCommand::Add(a)) => {
            let (vip, protocol) = a.service.resolve();
            let spec = ServiceSpec {
                vip: vip.to_string(),
                protocol: protocol.as_str().into(),
                scheduler: a.scheduler,
                forward: a.forward,
                nat_gateway: a.nat_gateway.map(|g| g.to_string()),
                local_addresses: a.local_addresses.iter().map(ToString::to_string).collect(),
                conn_limit: a.conn_limit,
                synproxy: a.synproxy,
                proxy_protocol: a.proxy_protocol,
            };
            change(&a.target, &Request::ServiceAdd(spec), a.json)
        }
        CliCommand::Service(ServiceCommand::Del(a)) => {
            let (vip, protocol) = a.service.resolve();
            let req = Request::ServiceDel {
                vip: vip.to_string(),
                protocol: protocol.as_str().into(),
                reset: a.reset,
            };
            change(&a.target, &req, a.json)
        }
        CliCommand::Backend(BackendCommand::Add(a)) => {
            let (vip, protocol, address) = a.backend.resolve();
            change(&a.target, &Request::BackendAdd { vip, protocol, address, weight: a.weight }, a.json)
        }
        CliCommand::Backend(BackendCommand::Del(a)) => {
            let (vip, protocol, address) = a.backend.resolve();
            change(&a.target, &Request::BackendDel { vip, protocol, address, reset: a.reset }, a.json)
        }
        CliCommand::Backend(BackendCommand::Set(a)) => {
            let (vip, protocol, address) = a.backend.resolve();
            change(&a.target, &Request::BackendSet { vip, protocol, address, weight: a.weight }, a.json)
        }
        CliCommand::Reload(a) => {
            let reply = ask(&a.target, &Request::Reload)?;
            if a.json { print_json(&reply) } else { print("reloaded\n") }
        }
        CliCommand::Cluster(a) => {
            let reply = ask(&a.target, &Request::Cluster)?;
            if a.json {
                return print_json(&reply);
            }
            print(&crate::routing::cli::format(&decode(&reply)?))
        }
    }
}

/// The control socket the arguments name: `--socket`, `--config`'s `[control] socket`, or
/// the default.
pub fn socket_path(t: &Target) -> Result<PathBuf, Failure> {
    if let Some(path) = &t.socket {
        return Ok(path.clone());
    }
    if let Some(file) = &t.config {
        return crate::config::load(file)
            .map(|c| c.control.socket)
            .map_err(|e| Failure::Usage(e.to_string()));
    }
    Ok(crate::config::Control::default().socket)
}

/// Sends one request and returns the reply, a refusal (`ok: false`) being a failure.
fn ask(t: &Target, req: &Request) -> Result<Reply, Failure> {
    let mut client = Client::connect(&socket_path(t)?)?;
    let reply = client.exchange(req)?;
    if reply.response.ok {
        Ok(reply)
    } else {
        let why =
            reply.response.error.unwrap_or_else(|| "the daemon refused the request (no reason given)".into());
        // Bad input the daemon caught (a weight out of range, a backend of the wrong family,
        // a configuration file that does not check) is exit 2, as if caught here.
        if reply.response.bad_input { Err(Failure::Usage(why)) } else { Err(Failure::Failed(why)) }
    }
}

/// A change: nothing printed on success unless `json`.
fn change(t: &Target, req: &Request, json: bool) -> Result<(), Failure> {
    let reply = ask(t, req)?;
    if json { print_json(&reply) } else { Ok(()) }
}

/// The reply's data as the type the request calls for.
fn decode<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, Failure> {
    serde_json::from_str(&reply.data_json)
        .map_err(|e| ClientError::BadReply { why: format!("unexpected data ({e})") }.into())
}

fn print_json(reply: &Reply) -> Result<(), Failure> {
    print(&format!("{}\n", reply.data_json))
}

fn print(text: &str) -> Result<(), Failure> {
    crate::write_stdout(text).map_err(|e| Failure::Failed(format!("writing the output: {e:#}")))
}
