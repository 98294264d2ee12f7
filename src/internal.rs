//! `sluice internal …`: the small real servers and clients the demo and the end-to-end tests
//! run inside their namespaces (hidden from `--help`). They are ordinary kernel sockets, so
//! what they exercise is the kernel's TCP and UDP against the appliance; they exist so that a
//! fresh machine needs no extra package to run the demo.
//!
//! - `http-server --listen ADDR --name NAME`: `GET /` answers `NAME: you are SRC:PORT`, so the
//!   client reads which server answered and the server says whom it saw (a LIP, in FullNAT);
//!   `GET /bytes/N` sends N bytes of a fixed pattern; `POST /sink` reads the body and answers
//!   its length and SHA-256.
//! - `udp-echo --listen ADDR --name NAME`: answers each datagram with `NAME: ` and the datagram.
//! - `udp-send --to ADDR --message M [--count N]`: datagrams sent, each answer printed.
//! - `http-get URL [--count N] [--digest]`: N sequential requests, each response body (or its
//!   length and SHA-256) printed on a line.

use sha2::Digest;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// The hidden tools.
#[derive(clap::Subcommand, Debug)]
pub enum Internal {
    /// A tiny HTTP/1.1 server.
    HttpServer {
        /// Address and port to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Its name in answers.
        #[arg(long)]
        name: String,
    },
    /// A UDP echo server.
    UdpEcho {
        /// Address and port to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Its name in answers.
        #[arg(long)]
        name: String,
    },
    /// Sends datagrams and prints the answers.
    UdpSend {
        /// Where to.
        #[arg(long)]
        to: SocketAddr,
        /// What.
        #[arg(long)]
        message: String,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// The same load through Sluice and through the kernel's nftables FullNAT (`bench/e2e-vs-kernel`).
    E2eVsKernel(crate::versus::VersusArgs),
    /// Legitimate connections per second at a SYN-proxied VIP with and without a SYN flood
    /// (`bench/synflood`).
    Synflood(crate::synflood::SynfloodArgs),
    /// Sequential HTTP GETs.
    HttpGet {
        /// `http://HOST[:PORT]/PATH` (HOST an IP address, IPv6 in brackets).
        url: String,
        /// How many requests.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Print the body's length and SHA-256 instead of the body.
        #[arg(long)]
        digest: bool,
    },
}

/// Runs a tool.
pub fn run(cmd: &Internal) -> anyhow::Result<()> {
    match cmd {
        Internal::HttpServer { listen, name } => http_server(*listen, name),
        Internal::UdpEcho { listen, name } => udp_echo(*listen, name),
        Internal::E2eVsKernel(args) => {
            print!("{}", crate::versus::run(args)?);
            Ok(())
        }
        Internal::Synflood(args) => {
            print!("{}", crate::synflood::run(args)?);
            Ok(())
        }
        Internal::UdpSend { to, message, count } => {
            let s = UdpSocket::bind(if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" })?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut buf = [0u8; 2048];
            for _ in 0..*count {
                s.send_to(message.as_bytes(), to)?;
                let (n, from) = s.recv_from(&mut buf)?;
                println!("{from} {}", String::from_utf8_lossy(&buf[..n]));
            }
            Ok(())
        }
        Internal::HttpGet { url, count, digest } => {
            for _ in 0..*count {
                let (status, body) = http_get(url, Duration::from_secs(30))?;
                if *digest {
                    let d = hex(&sha2::Sha256::digest(&body));
                    println!("{status} {} bytes sha256 {d}", body.len());
                } else {
                    println!("{status} {}", String::from_utf8_lossy(&body).trim_end());
                }
            }
            Ok(())
        }
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Byte `i` of `/bytes/N`.
pub fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) % 251) as u8
}

fn http_server(listen: SocketAddr, name: &str) -> anyhow::Result<()> {
    let l = TcpListener::bind(listen)?;
    eprintln!("http-server {name} listening on {listen}");
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let name = name.to_string();
        std::thread::spawn(move || {
            let _ = serve(conn, &name);
        });
    }
    Ok(())
}

fn serve(conn: TcpStream, name: &str) -> std::io::Result<()> {
    let peer = conn.peer_addr()?;
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) =
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let body: Vec<u8> = if method == "POST" && path == "/sink" {
            let mut hasher = sha2::Sha256::new();
            let mut left = length;
            let mut buf = vec![0u8; 65536];
            while left > 0 {
                let n = r.read(&mut buf[..left.min(65536)])?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                left -= n;
            }
            let digest = hex(&hasher.finalize());
            format!("{name}: received {} bytes sha256 {digest}\n", length - left).into_bytes()
        } else if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<usize>().ok()) {
            (0..n).map(pattern).collect()
        } else {
            format!("{name}: you are {peer}\n").into_bytes()
        };
        // Header and body in one write: two small writes on a keep-alive connection meet Nagle
        // and the peer's delayed ACK, 40 ms per request.
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n", body.len())
                .into_bytes();
        resp.extend_from_slice(&body);
        w.write_all(&resp)?;
        if close {
            return Ok(());
        }
    }
}

fn udp_echo(listen: SocketAddr, name: &str) -> anyhow::Result<()> {
    let s = UdpSocket::bind(listen)?;
    eprintln!("udp-echo {name} listening on {listen}");
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = s.recv_from(&mut buf)?;
        let mut out = format!("{name}: ").into_bytes();
        out.extend_from_slice(&buf[..n]);
        let _ = s.send_to(&out, from);
    }
}

/// One HTTP/1.1 GET: (status, body).
pub fn http_get(url: &str, timeout: Duration) -> anyhow::Result<(u16, Vec<u8>)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("{url}: only http:// URLs"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr: SocketAddr = host.parse().or_else(|_| format!("{host}:80").parse())?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let split =
        all.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no HTTP header"))?;
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, all[split + 4..].to_vec()))
}
