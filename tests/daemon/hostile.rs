//! Hostile local clients against a running daemon's listeners: idle connections, slow ones (a
//! byte every few hundred milliseconds), huge requests and many connections at once, on the
//! control socket and on the metrics endpoint. Each is cut off with a reason, the daemon does
//! not grow, and the operator's `sluice stats` and a Prometheus scrape keep working throughout.

use crate::support::Daemon;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `sluice stats` answers, promptly.
fn stats_work(d: &Daemon) {
    let started = Instant::now();
    let (code, out, err) = d.cli(&["stats", "--json"]);
    assert_eq!(code, 0, "sluice stats failed: {err}");
    assert!(out.contains("\"device\""), "{out}");
    assert!(started.elapsed() < Duration::from_secs(3), "sluice stats took {:?}", started.elapsed());
}

/// A scrape answers 200, promptly.
fn scrape_works(d: &Daemon) {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", d.metrics)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{}", &body[..body.len().min(200)]);
    assert!(started.elapsed() < Duration::from_secs(3), "the scrape took {:?}", started.elapsed());
}

/// Reads one reply line from a control connection.
fn reply(s: &UnixStream) -> String {
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line
}

#[test]
fn the_control_socket_bounds_idle_slow_huge_and_many_clients() {
    let d = Daemon::start();
    let pid = d.child.id();
    let before = rss_kib(pid);

    // Slow: a request that dribbles in a byte at a time is cut off at its deadline, and the
    // operator is served meanwhile.
    let slow = UnixStream::connect(&d.socket).unwrap();
    let slow_writer = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in br#"{"cmd":"stats"}"#.iter().cycle().take(200) {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    stats_work(&d);

    // Huge: a request line over the limit is refused without reading it all into memory.
    let mut huge = UnixStream::connect(&d.socket).unwrap();
    huge.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    for _ in 0..64 {
        match huge.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(_) => break,
        }
    }
    assert!(sent < 64 << 20, "the daemon read a 64 MiB request line");
    let r = reply(&huge);
    assert!(r.contains("longer than"), "huge: {r}");

    // The slow request ended with its reason (at its deadline, before the flood below could
    // evict it as the longest idle).
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = reply(&slow);
    assert!(r.contains("not complete within"), "slow: {r}");
    let _ = slow_writer.join();

    // Many: 300 connections (the limit is 64) left open and idle; the operator still gets in,
    // and the daemon does not keep a thread and two descriptors for each.
    let many: Vec<UnixStream> = (0..300).filter_map(|_| UnixStream::connect(&d.socket).ok()).collect();
    assert!(many.len() > 64);
    stats_work(&d);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    assert!(fds < 64 * 2 + 64, "the daemon holds {fds} descriptors");
    let evicted = many.iter().take(10).filter(|s| reply(s).contains("too many control connections")).count();
    assert!(evicted > 0, "the oldest idle connections were told why they were closed");

    drop(many);
    stats_work(&d);
    let after = rss_kib(pid);
    assert!(after < before + 64 * 1024, "the daemon grew from {before} KiB to {after} KiB");
}

#[test]
fn the_metrics_endpoint_bounds_slow_huge_and_many_clients() {
    let d = Daemon::start();
    // Slow: a byte every 300 ms (the old endpoint served one connection at a time with a 5 s
    // read timeout per read: every scrape waited behind it).
    let mut slow = TcpStream::connect(("127.0.0.1", d.metrics)).unwrap();
    let slow_writer = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().chain(std::iter::repeat_n(&b'a', 100)) {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    for _ in 0..3 {
        scrape_works(&d);
    }
    // Huge: a head over the cap is answered 431 without reading it all.
    let mut huge = TcpStream::connect(("127.0.0.1", d.metrics)).unwrap();
    huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
    head.extend(std::iter::repeat_n(b'h', 64 << 10));
    let _ = huge.write_all(&head);
    let mut answer = String::new();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "huge: {answer}");
    // Many: 100 idle connections (the limit is 16); a scrape still works.
    let many: Vec<TcpStream> =
        (0..100).filter_map(|_| TcpStream::connect(("127.0.0.1", d.metrics)).ok()).collect();
    assert_eq!(many.len(), 100);
    scrape_works(&d);
    // The slow one was cut off at the request deadline.
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 503"), "slow: {answer}");
    let _ = slow_writer.join();
}
