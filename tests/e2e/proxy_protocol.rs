//! PROXY protocol v2 end to end: nginx (`listen … proxy_protocol`) as the real server behind
//! FullNAT VIPs with `proxy_protocol = "v2"`, IPv4 and IPv6. nginx logs the client's own address
//! and the port curl used (`$proxy_protocol_addr:$proxy_protocol_port`) while its peer is the LIP,
//! and 24 MB go each way byte-identical through the NIC's sequence shift.

use crate::harness::{Appliance, Mode, Wire, have, require_root, topo};
use crate::{pattern, sha};
use std::path::Path;

/// nginx's configuration: everything (pid, logs, temporary files, the document root) under
/// `dir`, one process in the foreground (the topology kills it with the namespace), PROXY
/// protocol on both listeners, PUT into `/up/` for the uploads.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr "$request" $status';
    access_log {d}/access.log pp;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 80 proxy_protocol;
        listen [::]:8080 proxy_protocol;
        root {d}/www;
        location /up/ {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 64m;
        }}
    }}
}}
"#
    )
}

/// curl from the client: `(local address, local port, status)` and the body.
fn curl(a: &Appliance, args: &[&str]) -> ((String, u16, u16), Vec<u8>) {
    let out_file = a.dir.join("curl.out");
    let out_path = out_file.display().to_string();
    let mut cmd = vec![
        "curl",
        "-sS",
        "--max-time",
        "60",
        "-o",
        &out_path,
        "-w",
        "%{local_ip} %{local_port} %{http_code}",
    ];
    cmd.extend_from_slice(args);
    let out = a.client(&cmd);
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f.len(), 3, "curl -w: {text}");
    let body = std::fs::read(&out_file).unwrap_or_default();
    ((f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap()), body)
}

/// The access log's line for a request from `client`:`port` (nginx writes it when the request
/// ends, before curl sees the end of the answer).
fn logged(dir: &Path, client: &str, port: u16) -> String {
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    let start = format!("{client}:{port} ");
    match log.lines().find(|l| l.starts_with(&start)) {
        Some(line) => line.to_string(),
        None => panic!("no access-log line for {client}:{port}; the log:\n{log}"),
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth pairs and nginx (scripts/test-all runs it)"]
fn nginx_behind_a_proxy_protocol_vip_sees_the_real_client_and_transfers_are_whole() {
    require_root();
    assert!(have("nginx"), "nginx is not installed (scripts/test-all installs it)");
    assert!(have("curl"), "curl is not installed (scripts/test-all installs it)");
    // TCP :80 (IPv4) with PROXY protocol, and an IPv6 VIP port of its own with it.
    let extra = format!(
        "[service]\nproxy_protocol = \"v2\"\n[[service]]\nvip = \"[fd00:1::100]:8080\"\nlocal_addresses = [\"fd00:2::1\"]\nproxy_protocol = \"v2\"\n[[service.backend]]\naddress = \"[{}]:8080\"\n",
        topo::server_v6(0)
    );
    let mut a = Appliance::start("ppv", 1, Mode::InProcess(Wire::AfXdp), "rr", &[1], None, &extra);
    // nginx instead of the internal servers.
    a.kill_server(0);
    let dir = a.dir.join("nginx");
    std::fs::create_dir_all(dir.join("www").join("up")).unwrap();
    let mb = 24_000_000usize;
    std::fs::write(dir.join("www").join("index.html"), "hello from nginx\n").unwrap();
    std::fs::write(dir.join("www").join("big.bin"), pattern(mb)).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir)).unwrap();
    let (server_ns, d, c, e) = (
        a.net.servers[0].clone(),
        dir.display().to_string(),
        conf.display().to_string(),
        dir.join("error.log").display().to_string(),
    );
    a.net.topo.spawn(&server_ns, "nginx", &["-p", &d, "-c", &c, "-e", &e], true).unwrap();
    a.wait_for(20, "nginx answers through the VIP", |a| {
        a.client(&["curl", "-sS", "-o", "/dev/null", "--max-time", "2", "http://10.10.1.100/index.html"])
            .status
            .success()
    });

    let services = a.ask(&serde_json::json!({"cmd": "services"}));
    let pp: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["proxy_protocol"].as_str())
        .collect();
    assert_eq!(pp, ["v2", "v2"], "sluice services shows both: {services}");

    let before = a.stats();
    for (base, client, lip) in [
        ("http://10.10.1.100", topo::CLIENT_V4, "10.10.2.1"),
        ("http://[fd00:1::100]:8080", topo::CLIENT_V6, "fd00:2::1"),
    ] {
        // nginx names the client's address and the port curl used; its peer is the LIP.
        let ((ip, port, status), body) = curl(&a, &[&format!("{base}/index.html")]);
        assert_eq!((ip.as_str(), status, body.as_slice()), (client, 200, &b"hello from nginx\n"[..]));
        let line = logged(&dir, client, port);
        eprintln!("nginx logged: {line}");
        assert!(line.starts_with(&format!("{client}:{port} {lip} \"GET /index.html")), "{line}");
        assert!(line.ends_with(" 200"), "{line}");

        // 24 MB down and up, byte-identical.
        let ((_, port, status), body) = curl(&a, &[&format!("{base}/big.bin")]);
        assert_eq!((status, body.len()), (200, mb), "download from {base}");
        assert_eq!(sha(&body), sha(&pattern(mb)), "download from {base} byte-identical");
        assert!(logged(&dir, client, port).contains("GET /big.bin"));
        let data: Vec<u8> = (0..mb).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        let file = a.dir.join("upload.bin");
        std::fs::write(&file, &data).unwrap();
        let stored = dir.join("www").join("up").join("upload.bin");
        let _ = std::fs::remove_file(&stored);
        let ((_, port, status), _) =
            curl(&a, &["-T", &file.display().to_string(), &format!("{base}/up/upload.bin")]);
        assert_eq!(status, 201, "PUT to {base}");
        let got = std::fs::read(&stored).unwrap();
        assert_eq!((got.len(), sha(&got)), (mb, sha(&data)), "upload to {base} byte-identical");
        assert!(logged(&dir, client, port).contains("PUT /up/upload.bin"));
    }

    // The NIC carried the transfers (with the header's shift), the slow path saw little, and
    // each connection had its header.
    let after = a.stats();
    let delta = |k: &str, f: &str| after[k][f].as_u64().unwrap() - before[k][f].as_u64().unwrap();
    let (hits, slow) = (delta("nic", "hits"), delta("slowpath", "packets"));
    eprintln!("proxy protocol transfers: {hits} NIC hits, {slow} slow-path packets");
    assert!(hits > 10_000, "the NIC forwarded the bulk: {hits}");
    assert!(slow < hits / 100, "the slow path saw little of it: {slow} vs {hits}");
    assert!(delta("slowpath", "proxy_protocol_headers") >= 6, "{after}");
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(!errors.contains("broken header"), "nginx read every header: {errors}");
}

/// Frames a capture holds (Ethernet).
fn captured(path: &Path) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.to_vec());
    }
    out
}

/// The TCP options and destination port of an Ethernet + IPv4 TCP frame.
fn tcp_options(frame: &[u8]) -> Option<(u16, Vec<u8>)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return None;
    }
    let l4 = 14 + usize::from(frame[14] & 0x0F) * 4;
    let th = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
    let dport = u16::from_be_bytes([*frame.get(l4 + 2)?, *frame.get(l4 + 3)?]);
    Some((dport, frame.get(l4 + 20..l4 + th)?.to_vec()))
}

#[test]
#[ignore = "needs root: network namespaces, veth pairs and tcpdump (scripts/test-all runs it)"]
fn toa_carries_the_client_to_a_real_server_and_transfers_are_whole() {
    use std::io::BufRead;
    require_root();
    assert!(have("tcpdump"), "tcpdump is not installed (scripts/test-all installs it)");
    assert!(have("curl"), "curl is not installed (scripts/test-all installs it)");
    let a = Appliance::start(
        "ppt",
        1,
        Mode::InProcess(Wire::AfXdp),
        "rr",
        &[1],
        None,
        "[service]\nproxy_protocol = \"toa\"\n",
    );
    // A capture on the server's interface, ready once tcpdump says it listens.
    let pcap = a.dir.join("server.pcap");
    let mut tcpdump = std::process::Command::new("ip")
        .args(["netns", "exec", &a.net.servers[0], "tcpdump", "-i", "eth0", "-U", "-n", "-w"])
        .arg(&pcap)
        .arg("tcp port 80")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(tcpdump.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    assert!(line.contains("listening on"), "tcpdump did not start: {line}");

    // A real server without the TOA module ignores the option: the request works, it sees
    // the LIP, and 24 MB come down whole.
    let ((ip, port, status), body) = curl(&a, &["http://10.10.1.100/"]);
    assert_eq!((ip.as_str(), status), (topo::CLIENT_V4, 200));
    assert!(
        String::from_utf8_lossy(&body).contains("you are 10.10.2.1:"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let mb = 24_000_000usize;
    let (_, big) = curl(&a, &[&format!("http://10.10.1.100/bytes/{mb}")]);
    assert_eq!((big.len(), sha(&big)), (mb, sha(&pattern(mb))), "download byte-identical");
    let _ = std::process::Command::new("kill").args(["-INT", &tcpdump.id().to_string()]).status();
    let _ = tcpdump.wait();

    // The segments toward the server that carried option 254 name the client and curl's port.
    let mut toa = vec![254, 8];
    toa.extend_from_slice(&port.to_be_bytes());
    toa.extend_from_slice(&[10, 10, 1, 10]);
    let frames = captured(&pcap);
    let with: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|f| tcp_options(f))
        .filter(|(dport, o)| *dport == 80 && o.windows(2).any(|w| w == [254, 8]))
        .map(|(_, o)| o)
        .collect();
    assert!(
        with.iter().any(|o| o.windows(8).any(|w| w == toa.as_slice())),
        "no option {toa:?} among {with:?} ({} frames)",
        frames.len()
    );
    let counters = a.stats();
    assert!(counters["slowpath"]["toa_inserted"].as_u64().unwrap() >= 2, "{counters}");
    assert!(counters["nic"]["hits"].as_u64().unwrap() > 10_000, "the NIC carried the download");
}
