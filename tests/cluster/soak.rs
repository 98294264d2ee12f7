//! Issue 15's soak: one node killed (`kill -9`) and restarted ten times while wrk keeps the VIP
//! busy through the router, and what each failover cost: the router's withdrawal and return of
//! the node's route, and wrk's failed connections and requests over the cycle (the goal is none).
//! It takes about three minutes, so `scripts/test-all` skips it; `bench/cluster-soak` runs it and
//! prints the table. It asserts only what makes the figures meaningful (the route went and came
//! back each time, wrk completed requests in every cycle), never the figures themselves.

use super::{Cluster, one_cluster_at_a_time};
use std::process::Command;
use std::time::{Duration, Instant};

const CYCLES: usize = 10;

/// What one wrk run reported.
#[derive(Debug, Default, Clone, Copy)]
struct WrkRun {
    requests: u64,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    non_2xx: u64,
}

impl WrkRun {
    fn failed(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.non_2xx
    }
}

/// The figures of wrk's text output ("N requests in", "Socket errors: connect A, read B, write
/// C, timeout D", "Non-2xx or 3xx responses: E"); absent lines count 0.
fn parse_wrk(text: &str) -> WrkRun {
    let number_after = |line: &str, key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|r| r.trim().split([',', ' ']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let mut run = WrkRun::default();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("requests in") {
            run.requests = line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if line.starts_with("Socket errors:") {
            run.connect = number_after(line, "connect");
            run.read = number_after(line, "read");
            run.write = number_after(line, "write");
            run.timeout = number_after(line, "timeout");
        } else if line.starts_with("Non-2xx or 3xx responses:") {
            run.non_2xx = number_after(line, "responses:");
        }
    }
    run
}

#[test]
fn wrk_output_is_read_whole() {
    let text = "Running 8s test @ http://10.99.0.100/\n  1 threads and 20 connections\n  \
                51234 requests in 8.00s, 7.1MB read\n  Socket errors: connect 3, read 12, write 0, timeout 7\n  \
                Non-2xx or 3xx responses: 2\nRequests/sec:   6404.25\n";
    let r = parse_wrk(text);
    assert_eq!((r.requests, r.connect, r.read, r.write, r.timeout, r.non_2xx), (51234, 3, 12, 0, 7, 2));
    assert_eq!(r.failed(), 24);
    assert_eq!(parse_wrk("12 requests in 1.00s, 1KB read\n").failed(), 0);
}

/// Waits until the router has `want` next hops for the VIP; how long that took, or `None`
/// after `within`.
fn hops_within(c: &Cluster, want: usize, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if c.next_hops("10.99.0.100").len() == want {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
#[ignore = "soak, about 3 minutes, needs root and BIRD: bench/cluster-soak runs it (scripts/test-all skips it)"]
fn soak_a_node_killed_and_restarted_ten_times_under_wrk() {
    let _alone = one_cluster_at_a_time();
    let mut c = Cluster::build("slck");
    assert!(hops_within(&c, 2, Duration::from_secs(30)).is_some(), "both nodes announce the VIP");
    // Sync has heard both ways before the first kill.
    std::thread::sleep(Duration::from_secs(2));
    let mut rows = Vec::new();
    for cycle in 0..CYCLES {
        let node = cycle % 2;
        let client = c.client.clone();
        let wrk = std::thread::spawn(move || {
            let out = Command::new("ip")
                .args(["netns", "exec", &client, "wrk", "-t1", "-c20", "-d8s", "--timeout", "2s"])
                .arg("http://10.99.0.100/")
                .output()
                .expect("wrk runs (apt-get install wrk)");
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        std::thread::sleep(Duration::from_secs(2));
        let killed = Instant::now();
        assert!(Command::new("kill").args(["-9", &c.pids[node].to_string()]).status().unwrap().success());
        let withdrawn = hops_within(&c, 1, Duration::from_secs(5));
        assert!(withdrawn.is_some(), "cycle {cycle}: the router withdrew node {node}'s route");
        std::thread::sleep(Duration::from_millis(500));
        c.spawn_daemon(node);
        let back = hops_within(&c, 2, Duration::from_secs(30));
        assert!(back.is_some(), "cycle {cycle}: node {node} announces the VIP again after its restart");
        let back_after = killed.elapsed();
        let run = parse_wrk(&wrk.join().unwrap());
        assert!(run.requests > 0, "cycle {cycle}: wrk completed requests");
        eprintln!(
            "soak cycle {cycle}: node {} killed; route withdrawn after {:?}, back {:?} after the kill; wrk: {} requests, \
             {} failed (connect {}, read {}, write {}, timeout {}, non-2xx {})",
            node + 1,
            withdrawn.unwrap_or_default(),
            back_after,
            run.requests,
            run.failed(),
            run.connect,
            run.read,
            run.write,
            run.timeout,
            run.non_2xx
        );
        rows.push(run);
        // Let the restarted node's sync and BFD settle before the next kill.
        std::thread::sleep(Duration::from_secs(2));
    }
    let failed: u64 = rows.iter().map(WrkRun::failed).sum();
    let requests: u64 = rows.iter().map(|r| r.requests).sum();
    eprintln!("soak: {CYCLES} kill -9 and restarts, {requests} requests, {failed} failed in all (goal 0)");
}
