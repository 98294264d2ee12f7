//! `sluice demo`: the appliance doing its job, in a minute, on this machine.
//!
//! As root it builds a small network of namespaces (a client, the appliance with the in-process
//! NIC model attached to veths, two real servers running an HTTP server), starts `sluice run`
//! in the appliance's namespace, sends real HTTP requests from the client to the VIP over IPv4
//! and IPv6, prints the answers (each server says which address it saw: a LIP, since this is
//! FullNAT), the flow table and the counters that show the flows offloaded and the NIC serving
//! their packets, then removes everything it made. Without root it says so and runs the same
//! exchange through in-memory ports (module `memory`).

mod memory;

use crate::topo::{self, FullNat};
use anyhow::{Context, bail};
use std::process::Command;
use std::time::Duration;

/// Runs the demo.
pub fn run(in_memory: bool) -> anyhow::Result<String> {
    if in_memory {
        return memory::run();
    }
    if !topo::is_root() {
        println!(
            "sluice demo: not root, so no network namespaces: the same traffic runs through in-memory ports.\n"
        );
        return memory::run();
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!(
            "sluice demo: iproute2 (the ip command) is missing, so no namespaces: in-memory ports instead.\n"
        );
        return memory::run();
    }
    live()
}

fn exe() -> anyhow::Result<String> {
    Ok(std::env::current_exe()?.display().to_string())
}

fn live() -> anyhow::Result<String> {
    let me = exe()?;
    let dir = std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    println!("Building the demo network (namespaces sl-demo-c, -lb, -sw, -r1, -r2)...");
    let mut net = FullNat::build("sl-demo", 2).context("building the namespaces")?;
    net.start_servers(&me, true)?;
    let socket = dir.join("sluice.sock");
    let cfg = net.config(&socket, "127.0.0.1:9100", "rr", &[1, 1], None);
    let cfg_path = dir.join("sluice.toml");
    std::fs::write(&cfg_path, &cfg)?;
    println!("Starting the appliance: sluice run --config {} (in sl-demo-lb)", cfg_path.display());
    let (_pid, _log) = net.start_appliance(&me, &cfg_path)?;
    std::thread::sleep(Duration::from_millis(300));
    println!("\nThe client (10.10.1.10) asks the VIP 10.10.1.100:80 six times:");
    client_get(&net.client, &me, "http://10.10.1.100/", 6)?;
    println!("\nAnd over IPv6, [fd00:1::100]:80, twice:");
    client_get(&net.client, &me, "http://[fd00:1::100]/", 2)?;
    println!("\nEach server saw a local address of the appliance (a LIP), never the client: FullNAT.");
    println!("A bigger download, 4 MB, to show the NIC carrying an established flow:");
    let out = ns_output(
        &net.client,
        &me,
        &["internal", "http-get", "--digest", "http://10.10.1.100/bytes/4000000"],
    )?;
    println!("  {}", out.trim());
    std::thread::sleep(Duration::from_millis(200));
    for (title, args) in [
        ("\nThe services (sluice services):", vec!["services"]),
        ("\nThe flow table (sluice flows):", vec!["flows"]),
        ("\nThe counters (sluice stats):", vec!["stats"]),
    ] {
        println!("{title}");
        let out = Command::new(&me).args(&args).arg("--socket").arg(&socket).output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            print!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    drop(net);
    Ok("\nRemoved the namespaces; the demo is over. `sluice run --config FILE` runs the appliance for real.\n".into())
}

fn ns_output(ns: &str, me: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(["netns", "exec", ns, me]).args(args).output()?;
    if !out.status.success() {
        bail!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn client_get(ns: &str, me: &str, url: &str, count: u32) -> anyhow::Result<()> {
    let out = ns_output(ns, me, &["internal", "http-get", url, "--count", &count.to_string()])?;
    for line in out.lines() {
        println!("  {line}");
    }
    Ok(())
}

struct RemoveDir(std::path::PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
