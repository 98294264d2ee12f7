//! `sluice internal synflood` (run by `bench/synflood`): what a SYN flood costs the legitimate
//! clients of a SYN-proxied VIP. The end-to-end topology (namespaces, veths, two servers) with
//! `synproxy = true` on the VIP; short-connection wrk runs (each request a new connection)
//! without and with `hping3 --flood --rand-source -S` at the VIP from the client's namespace,
//! alternating, and a table with the medians, their ratio, and the cookies the proxy answered.

use crate::topo::{self, FullNat};
use crate::versus::{VersusArgs, wrk};
use anyhow::{Context, bail};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The bench's options.
#[derive(clap::Args, Debug)]
pub struct SynfloodArgs {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Concurrent connections of the wrk runs.
    #[arg(long, default_value_t = 20)]
    pub connections: u32,
    /// Rounds of each (without, with the flood), alternating.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
}

/// SYN cookies the daemon has answered so far (0 if it does not answer).
fn cookies_sent(socket: &std::path::Path) -> u64 {
    crate::cli::client::Client::connect(socket)
        .and_then(|mut c| c.call(&crate::control::proto::Request::Stats))
        .ok()
        .and_then(|r| serde_json::from_value::<crate::control::proto::StatsReply>(r.data).ok())
        .map_or(0, |s| s.slowpath.syn_cookies)
}

/// Runs the bench and returns the table.
pub fn run(args: &SynfloodArgs) -> anyhow::Result<String> {
    if !topo::is_root() {
        bail!("the bench builds network namespaces: run it as root");
    }
    for tool in ["wrk", "hping3"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            bail!("{tool} is missing: apt-get install wrk hping3 (./scripts/test-all installs them)");
        }
    }
    let me = std::env::current_exe()?.display().to_string();
    let dir = std::env::temp_dir().join(format!("sluice-synflood-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut net = FullNat::build("sl-sf", 2)?;
    net.start_servers(&me, false)?;
    let socket = dir.join("sluice.sock");
    let cfg = net.config(&socket, "127.0.0.1:9100", "rr", &[1, 1], None);
    let cfg = cfg.replacen("[[service]]\n", "[[service]]\nsynproxy = true\n", 1);
    std::fs::write(dir.join("sluice.toml"), cfg)?;
    let (_pid, log) = net.start_appliance(&me, &dir.join("sluice.toml"))?;
    std::thread::spawn(move || for _ in log {});
    let load = VersusArgs {
        seconds: args.seconds,
        connections: args.connections,
        megabytes: 0,
        port_kind: "auto".into(),
        rounds: 1,
        one_thread: false,
        peers_threaded: false,
    };
    let (mut calm, mut flood, mut cookies) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        eprintln!("synflood: round {round}/{}: without a flood...", args.rounds);
        calm.push(wrk(&net.client, &load, true)?.0);
        eprintln!("synflood: round {round}/{}: under hping3 --flood --rand-source -S...", args.rounds);
        let before = cookies_sent(&socket);
        let mut hping = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.client,
                "hping3",
                "--flood",
                "--rand-source",
                "-S",
                "-p",
                "80",
                "10.10.1.100",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hping3")?;
        std::thread::sleep(Duration::from_millis(300));
        let r = wrk(&net.client, &load, true);
        let after = cookies_sent(&socket);
        let _ = hping.kill();
        let _ = hping.wait();
        flood.push(r?.0);
        let answered = u32::try_from(after.saturating_sub(before)).unwrap_or(u32::MAX);
        cookies.push(f64::from(answered) / (f64::from(args.seconds) + 0.3));
    }
    drop(net);
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (c, f, k) = (median(&calm), median(&flood), median(&cookies));
    Ok(format!(
        "synflood: {} round(s), {} s wrk runs of {} connections, each request a new connection, synproxy on the VIP\n\
         legitimate conn/s without a flood   {c:.0}   (runs: {calm:.0?})\n\
         legitimate conn/s under the flood   {f:.0}   (runs: {flood:.0?})\n\
         ratio                               {:.2}\n\
         SYN cookies answered per second     {k:.0}\n",
        args.rounds,
        args.seconds,
        args.connections,
        if c > 0.0 { f / c } else { 0.0 },
    ))
}
