//! `sluice`: the appliance daemon and its command-line interface. The binary only parses the
//! command line and starts the logger; [`sluice::app`] runs the command.
#![deny(unsafe_op_in_unsafe_fn)]

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sluice::app::Cli::parse();
    // Logs go to stderr, filtered by RUST_LOG (default: warnings and errors); colours only on a
    // terminal, so the journal and log files get plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    sluice::app::run(cli)
}
