//! The command line: every `sluice` command and what runs it. Each command is handed to the
//! module that owns it. Exit codes: 0 success, 1 a failure while doing the work, 2 bad usage or
//! bad input (clap's convention, kept for every command).

use crate::{bench, cli, config, daemon, demo, device, flash, fw, internal, replay, sim, write_stdout};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Sluice: an L4 FullNAT load balancer with a SmartNIC/FPGA flow-table offload.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `sluice` command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the appliance: `sluice run --config FILE` (the in-process NIC model unless
    /// `[device] transport` says otherwise).
    Run {
        /// The configuration (TOML; `sluice config example` prints a complete one).
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Override `[device] transport`: sim, vfio-user (socket from `[device] socket`) or
        /// vfio (address from `[device] pci`).
        #[arg(long, value_name = "TRANSPORT")]
        transport: Option<String>,
    },
    /// The configuration: `sluice config example` prints a complete, commented one;
    /// `sluice config check --config FILE [--json]` checks one (exit 2 with the problem).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Replay captures through the whole appliance: `sluice replay --config FILE --in p0=IN.pcap --out p1=OUT.pcap`.
    Replay(replay::ReplayArgs),
    /// Small real servers and clients for the demo and the end-to-end tests.
    #[command(subcommand, hide = true)]
    Internal(internal::Internal),
    /// See the appliance work: namespaces, real HTTP through the VIP, the flow table (as root;
    /// in memory otherwise).
    Demo {
        /// Use in-memory ports even as root (no namespaces).
        #[arg(long)]
        memory: bool,
    },
    /// Print the NIC specification (rtl-spec/SPEC.md), generated from the rtl_spec crate.
    Spec {
        /// Print the same content as JSON: blocks, registers, formats and codes.
        #[arg(long, conflicts_with_all = ["sv", "rdl"])]
        json: bool,
        /// Print the SystemVerilog package the RTL imports (rtl/generated/sluice_spec_pkg.sv).
        #[arg(long, conflicts_with = "rdl")]
        sv: bool,
        /// Print BAR0 as SystemRDL 2.0 for register tools (rtl/generated/sluice.rdl).
        #[arg(long)]
        rdl: bool,
    },
    /// Inspect a NIC: `sluice device info [--pci ADDR | --vfio-user PATH] [--json]`.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Serve the software NIC over vfio-user: `sluice sim --socket PATH [--port p0=veth0]...`.
    Sim {
        /// The Unix socket to listen on (a stale one is replaced).
        #[arg(long)]
        socket: std::path::PathBuf,
        /// Attach model port NAME (p0, p1... or a bare index) to the Linux interface IFACE,
        /// with AF_XDP (kind=af_xdp, on receive queue N), AF_PACKET (kind=af_packet) or AF_XDP
        /// falling back to AF_PACKET (kind=auto, the default).
        #[arg(long = "port", value_name = "NAME=IFACE[,kind=K][,queue=N]")]
        ports: Vec<String>,
        /// The model's flash, kept in FILE across restarts (created with the factory image).
        #[arg(long, value_name = "FILE")]
        flash: Option<std::path::PathBuf>,
        /// Fault injection for tests: the process dies (as at a power cut) after this many
        /// bytes are written to the flash.
        #[arg(long, value_name = "BYTES", hide = true)]
        power_cut_after: Option<u64>,
    },
    /// Firmware images: `sluice fw keygen | pack | inspect`.
    #[command(subcommand)]
    Fw(fw::FwCommand),
    /// Write, show, activate, roll back or confirm the NIC's firmware: `sluice flash --device DEV IMAGE`.
    Flash(flash::FlashArgs),
    /// The commands that talk to a running daemon: services, flows, stats, top, service,
    /// backend, reload.
    #[command(flatten)]
    Control(cli::CliCommand),
    /// Benchmarks against the in-process model: `sluice bench [--quick] [--json] [--only F,..]`.
    Bench(bench::BenchArgs),
}

/// `sluice config`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print a complete example configuration, every key with a comment.
    Example,
    /// Check a configuration and print it as the daemon reads it (defaults filled in).
    Check {
        /// The configuration.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Print the typed configuration as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn config_command(cmd: &ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Example => {
            let _ = write_stdout(config::EXAMPLE);
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { config: path, json } => {
            match config::load(path).and_then(|c| config::check_paths(&c).map(|()| c)) {
                Ok(cfg) => {
                    let text = if *json {
                        serde_json::to_string_pretty(&cfg).unwrap_or_default() + "\n"
                    } else {
                        format!(
                            "{}: ok: {} port(s), {} service(s)\n",
                            cfg.origin,
                            cfg.ports.len(),
                            cfg.services.len()
                        )
                    };
                    let _ = write_stdout(&text);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluice: {e}");
                    e.exit_code()
                }
            }
        }
    }
}

/// Runs one command line (parsed by the caller, `Cli::parse()`), logging to stderr.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run { config, transport } => return daemon::run(&config, transport.as_deref()),
        Command::Config(cmd) => return config_command(&cmd),
        Command::Internal(cmd) => internal::run(&cmd),
        Command::Demo { memory } => demo::run(memory).and_then(|text| write_stdout(&text)),
        Command::Replay(args) => match replay::run(&args) {
            Ok(text) => write_stdout(&text),
            Err(replay::ReplayError::Usage(m)) => {
                eprintln!("sluice: {m}");
                return ExitCode::from(2);
            }
            Err(replay::ReplayError::Failed(e)) => Err(e),
        },
        Command::Control(cmd) => return cli::run(cmd),
        Command::Spec { json, sv, rdl } => {
            let text = if json {
                rtl_spec::doc::json()
            } else if sv {
                rtl_spec::doc_sv::package()
            } else if rdl {
                rtl_spec::doc_rdl::rdl()
            } else {
                rtl_spec::doc::markdown()
            };
            write_stdout(&text)
        }
        Command::Device(cmd) => device::run(&cmd).and_then(|text| write_stdout(&text)),
        Command::Fw(cmd) => fw::run(&cmd).and_then(|text| write_stdout(&text)),
        Command::Flash(args) => flash::run(&args).and_then(|text| write_stdout(&text)),
        Command::Bench(args) => bench::run(&args),
        Command::Sim { socket, ports, flash, power_cut_after } => {
            match sim::open_ports(&ports, rtl_spec::image::ModelConfig::default().ports) {
                Ok(ports) => sim::run(&socket, ports, flash.as_deref(), power_cut_after),
                Err(e) => {
                    eprintln!("sluice: {e}");
                    return e.exit_code();
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            // A refused image or other bad input is exit 2, a failure while working exit 1.
            if e.downcast_ref::<fw::BadInput>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
