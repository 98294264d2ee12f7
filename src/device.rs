//! `sluice device info`: what a NIC is, read from its registers without changing anything
//! (no reset, no ring set up), so it is safe on a device a daemon is driving.

use anyhow::Context;
use clap::{Args, Subcommand};
use host_driver::transport::Transport;
use std::path::PathBuf;

/// Device commands.
#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Identity, spec version, flow-table geometry, capabilities, ports and register blocks.
    Info(InfoArgs),
}

/// Which device, and how to print it.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A card bound to vfio-pci, by PCI address (0000:03:00.0).
    #[arg(long, conflicts_with = "vfio_user")]
    pci: Option<String>,
    /// The software NIC served by `sluice sim --socket PATH`.
    #[arg(long, value_name = "PATH")]
    vfio_user: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Opens the transport the arguments name; the in-process model when they name none.
fn open(args: &InfoArgs) -> anyhow::Result<Box<dyn Transport>> {
    if let Some(pci) = &args.pci {
        return Ok(Box::new(host_driver::transport::vfio::VfioTransport::open(pci)?));
    }
    if let Some(path) = &args.vfio_user {
        return Ok(Box::new(host_driver::transport::vfio_user::VfioUserTransport::connect(path)?));
    }
    let clock = std::sync::Arc::new(rtl_spec::clock::SystemClock::default());
    let model =
        host_driver::transport::inprocess::InProcess::new(rtl_spec::image::ModelConfig::default(), clock)?;
    Ok(Box::new(model))
}

/// Runs a device command, returning what to print.
pub fn run(cmd: &DeviceCommand) -> anyhow::Result<String> {
    match cmd {
        DeviceCommand::Info(args) => {
            let mut t = open(args)?;
            let (info, _) = host_driver::nic::probe(t.as_mut()).context("reading the device")?;
            if args.json { Ok(serde_json::to_string_pretty(&info)? + "\n") } else { Ok(info.to_string()) }
        }
    }
}
