//! `sluice sim`: the software NIC as a process of its own, served over vfio-user on a Unix
//! socket, so a driver drives it exactly as it would drive the card.
//!
//! The device is exposed as a PCI function the way QEMU's and libvfio-user's servers expose
//! one:
//!
//! - region 0 (BAR0), [`rtl_spec::regs::BAR0_SIZE`] bytes: every read and write goes to the
//!   model's [`Device::read32`]/[`Device::write32`] (8-byte accesses to the 64-bit twins);
//! - region 7, the PCI configuration space: the ids of [`rtl_spec::pci`], a 64-bit memory BAR0
//!   that sizes as hardware's does;
//! - IRQ index 2 (MSI-X), [`rtl_spec::pci::MSIX_VECTORS`] vectors: the client passes an eventfd
//!   per vector with `SET_IRQS`, and the device's interrupt sink writes it;
//! - `DMA_MAP` with a file descriptor (the driver's memfd): mapped shared here, so the model's
//!   DMA reads and writes touch the driver's own pages ([`MappedMemory`]); `DMA_UNMAP` drops it;
//! - `DEVICE_RESET`: [`Device::reset`].
//!
//! Threads share the device through a mutex: the session thread (one client at a time;
//! register accesses, DMA map changes), the accept thread, and the datapath loop in the
//! caller's thread (port polling and [`Device::tick`]), each holding the lock for one access
//! or one poll round. When a client disconnects, its DMA mappings and eventfds are dropped and
//! the next client is served; the device is not reset (a reset is the driver's to ask for), so
//! its flow table keeps forwarding across a daemon restart. A client that connects while another
//! holds the session is refused at once (EBUSY, with the holder's pid and name as the reason),
//! so `sluice device info` says the device is busy instead of waiting.
//!
//! The protocol itself is the `vfio_user` crate's [`vfio_user::Server`] (the patched copy in
//! `vendor/`: a malformed message ends its session with an error reply, never the process).
//! A session blocks in the connected socket and cannot be interrupted from outside: a stop
//! while a client is connected makes [`serve`] return without waiting for that session (the
//! socket file is removed; the session ends when the process exits, which is what `sluice
//! sim` does next).

use anyhow::{Context, bail};
use sim_model::clock::SystemClock;
use sim_model::device::{Device, ModelConfig};
use sim_model::port::{Port, PortKind};
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vfio_user::Server;

mod backend;

pub use backend::MappedMemory;
use backend::{Backend, ConfigSpace, Vectors, irqs, lock, regions};

/// How long the protocol thread waits between looks at the stop flag while no client is
/// connected.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// How long a new client waits for a session whose client just went away to end.
const SESSION_END_GRACE: Duration = Duration::from_millis(500);
/// How long the datapath loop sleeps after a round with nothing to do, at most: it sleeps in
/// `poll()` on the ports and wakes at once when a frame arrives.
const IDLE_SLEEP: Duration = Duration::from_micros(100);
/// Frames taken from each port per datapath round.
const POLL_BUDGET: usize = 32;
/// Bytes of PCI configuration space (conventional PCI).
const CONFIG_SIZE: usize = 256;

/// Model ports and what each is attached to.
pub type Ports = Vec<(u8, Box<dyn Port>)>;

/// A `--port` value that cannot be used: the message names it; `usage` tells a bad value
/// or missing interface (exit code 2) from a failure to open a real one (exit code 1).
#[derive(Debug)]
pub struct PortError {
    /// What is wrong, naming the value and the interface.
    pub message: String,
    /// Bad input rather than a failure while doing the work.
    pub usage: bool,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PortError {}

impl PortError {
    /// The process exit code this error calls for.
    pub fn exit_code(&self) -> std::process::ExitCode {
        std::process::ExitCode::from(if self.usage { 2 } else { 1 })
    }
}

/// One parsed `--port` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The model's port number.
    pub index: u8,
    /// The Linux interface.
    pub iface: String,
    /// `kind=`: AF_XDP, AF_PACKET, or AF_XDP falling back to AF_PACKET (default).
    pub kind: PortKind,
    /// `queue=`: the AF_XDP receive queue (default 0).
    pub queue: u32,
}

/// Parses one `--port NAME=IFACE[,kind=auto|af_xdp|af_packet][,queue=N]` value: NAME is `pN`
/// or a bare index `N`.
pub fn parse_port(spec: &str) -> Result<PortSpec, PortError> {
    let usage = |why: &str| PortError {
        message: format!(
            "--port {spec:?}: {why} (expected NAME=IFACE[,kind=auto|af_xdp|af_packet][,queue=N], e.g. p0=veth0)"
        ),
        usage: true,
    };
    let mut parts = spec.split(',');
    let first = parts.next().unwrap_or_default();
    let (name, iface) = first.split_once('=').ok_or_else(|| usage("no '='"))?;
    let digits = name.strip_prefix('p').unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage("the port name is not pN or a number"));
    }
    let index = digits.parse::<u8>().map_err(|_| usage("the port number is out of range"))?;
    if iface.is_empty() {
        return Err(usage("no interface"));
    }
    let mut out = PortSpec { index, iface: iface.to_string(), kind: PortKind::Auto, queue: 0 };
    for option in parts {
        match option.split_once('=') {
            Some(("kind", k)) => {
                out.kind = PortKind::from_name(k).ok_or_else(|| usage(&format!("unknown kind {k:?}")))?;
            }
            Some(("queue", q)) => {
                out.queue = q.parse().map_err(|_| usage(&format!("queue {q:?} is not a number")))?;
            }
            _ => return Err(usage(&format!("unknown option {option:?}"))),
        }
    }
    Ok(out)
}

/// Parses every `--port` value and opens each interface (AF_XDP, or AF_PACKET as `kind` says).
/// A port named twice or beyond the model's `max_ports` is refused.
pub fn open_ports(specs: &[String], max_ports: u8) -> Result<Ports, PortError> {
    let mut out: Ports = Vec::new();
    for spec in specs {
        let p = parse_port(spec)?;
        let n = p.index;
        if n >= max_ports {
            return Err(PortError {
                message: format!("--port {spec:?}: the model has ports p0..p{}", max_ports - 1),
                usage: true,
            });
        }
        if out.iter().any(|(m, _)| *m == n) {
            return Err(PortError {
                message: format!("--port {spec:?}: port p{n} given twice"),
                usage: true,
            });
        }
        let label = format!("port p{n}");
        let port = sim_model::port::open_interface(&label, &p.iface, p.kind, p.queue).map_err(|e| {
            PortError { message: format!("--port {spec:?}: {e}"), usage: sim_model::port::is_bad_setting(&e) }
        })?;
        tracing::info!(port = n, wire = %port.describe(), "port attached");
        out.push((n, port));
    }
    Ok(out)
}

/// `sluice sim --socket PATH [--port NAME=IFACE]... [--flash FILE]`: serves the model until
/// SIGINT or SIGTERM. With `--flash`, the model's flash lives in FILE (created with the factory
/// image when missing) and the model boots from it; without, it is in memory with the factory
/// image. `power_cut_after`: abort the process after that many bytes are written to the flash
/// (a simulated power cut, for tests).
pub fn run(
    socket: &Path,
    ports: Ports,
    flash: Option<&Path>,
    power_cut_after: Option<u64>,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing the signal handlers")?;
    }
    let factory = ModelConfig::default();
    let image = sim_model::flash::factory_image(&factory);
    let mut medium = match flash {
        Some(path) => sim_model::flash::Flash::open(path, &image)
            .with_context(|| format!("opening the flash file {}", path.display()))?,
        None => sim_model::flash::Flash::with_image(&image),
    };
    if let Some(bytes) = power_cut_after {
        medium.cut_power_after(
            bytes,
            Some(Box::new(|| {
                eprintln!("sluice sim: simulated power cut");
                std::process::abort();
            })),
        );
    }
    serve(socket, medium, factory, ports, stop)
}

/// Serves a model booted from `flash` (factory image `factory`), with `ports` attached, on the
/// Unix socket `socket` until `stop` is set. A stale socket file is replaced; a socket another
/// server listens on is refused. The socket file is removed on return.
pub fn serve(
    socket: &Path,
    flash: sim_model::flash::Flash,
    factory: ModelConfig,
    ports: Ports,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let memory = Arc::new(MappedMemory::default());
    let mut device = Device::with_flash(flash, factory, memory.clone(), Arc::new(SystemClock::default()))
        .map_err(|e| anyhow::anyhow!("model configuration: {e}"))?;
    for (n, port) in ports {
        device.attach_port(n, port).map_err(|e| anyhow::anyhow!("attaching port p{n}: {e}"))?;
    }
    // The ports stay attached for the life of the server: their descriptors are fixed.
    let port_fds = device.port_fds();
    let vectors = Arc::new(Vectors::default());
    let sink = vectors.clone();
    device.set_interrupt_sink(Box::new(move |v| sink.fire(v)));
    let device = Arc::new(Mutex::new(device));

    let listener = bind(socket)?;
    let _remove = RemoveOnDrop(socket.to_path_buf());
    // Scripts and tests wait for this line: the socket accepts clients from here on.
    eprintln!("sluice sim: listening on {} (Ctrl-C to stop)", socket.display());
    listener.set_nonblocking(true).with_context(|| format!("{}: setting non-blocking", socket.display()))?;
    tracing::info!(socket = %socket.display(), "vfio-user server listening");

    let backend = Backend { device: device.clone(), memory, vectors, config: ConfigSpace::new() };
    let server = Arc::new(Server::from_owned_fd(OwnedFd::from(listener), true, irqs(), regions()));
    let in_session = Arc::new(AtomicBool::new(false));
    let watch = stop.clone();
    let protocol = {
        let in_session = in_session.clone();
        std::thread::Builder::new()
            .name("vfio-user".into())
            .spawn(move || protocol_loop(&server, backend, &stop, &in_session))
            .context("starting the vfio-user thread")?
    };
    let stop = watch;

    while !stop.load(Ordering::SeqCst) && !protocol.is_finished() {
        let frames = {
            let mut d = lock(&device);
            let n = d.poll_ports(POLL_BUDGET);
            d.tick();
            n
        };
        if frames == 0 {
            // Outside the lock: the protocol thread may need the device meanwhile.
            sim_model::device::wait_readable(&port_fds, IDLE_SLEEP);
        }
    }
    // The protocol thread notices the flag within ACCEPT_POLL unless a client holds it.
    stop.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + ACCEPT_POLL * 4;
    while !protocol.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if protocol.is_finished() {
        match protocol.join() {
            Ok(result) => result?,
            Err(_) => bail!("the vfio-user thread panicked"),
        }
    } else if in_session.load(Ordering::SeqCst) {
        tracing::warn!("stopping with a client connected; its connection closes when the process exits");
    }
    Ok(())
}

/// A session in progress: its thread gives the backend back when the client goes.
struct Session {
    thread: std::thread::JoinHandle<Backend>,
    /// Who holds it, for the clients refused meanwhile ("pid 1234 (sluice)").
    holder: String,
}

/// Accepts clients until `stop`: the first is served on a session thread of its own, any other
/// that arrives meanwhile is refused as busy.
fn protocol_loop(
    server: &Arc<Server>,
    backend: Backend,
    stop: &AtomicBool,
    in_session: &AtomicBool,
) -> anyhow::Result<()> {
    let mut idle = Some(backend);
    let mut session: Option<Session> = None;
    let end_finished = |session: &mut Option<Session>, idle: &mut Option<Backend>| -> anyhow::Result<()> {
        if session.as_ref().is_some_and(|s| s.thread.is_finished()) {
            let Some(s) = session.take() else { return Ok(()) };
            let mut backend =
                s.thread.join().map_err(|_| anyhow::anyhow!("the vfio-user session panicked"))?;
            backend.disconnect();
            *idle = Some(backend);
            in_session.store(false, Ordering::SeqCst);
        }
        Ok(())
    };
    while !stop.load(Ordering::SeqCst) {
        end_finished(&mut session, &mut idle)?;
        // The listener is non-blocking; a socket returned by accept(2) does not inherit
        // O_NONBLOCK on Linux, so a session blocks as the crate expects.
        let mut stream = match server.accept() {
            Ok(stream) => stream,
            Err(vfio_user::Error::SocketAccept(e)) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(vfio_user::Error::SocketAccept(e)) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("accepting a vfio-user client"),
        };
        if idle.is_none() {
            // A client that dies (kill -9) and is restarted at once can come back before its
            // old session thread has read the end of the old connection: give that a moment
            // rather than refuse the restarted client as busy.
            let deadline = std::time::Instant::now() + SESSION_END_GRACE;
            while idle.is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(ACCEPT_POLL);
                end_finished(&mut session, &mut idle)?;
            }
        }
        let Some(mut backend) = idle.take() else {
            let holder = session.as_ref().map_or("another client", |s| s.holder.as_str());
            let reason = format!("the device is busy: {holder} holds its session");
            tracing::info!(client = %peer_name(&stream), "{reason}; refused");
            let _ = Server::reply_busy(&mut stream, &reason);
            continue;
        };
        let holder = peer_name(&stream);
        tracing::info!(client = %holder, "vfio-user client connected");
        in_session.store(true, Ordering::SeqCst);
        let server = server.clone();
        let thread = std::thread::Builder::new()
            .name("vfio-user-session".into())
            .spawn(move || {
                match server.serve(stream, &mut backend) {
                    Err(e) => tracing::warn!(error = %e, "vfio-user session ended with an error"),
                    Ok(()) => tracing::info!("vfio-user client disconnected"),
                }
                backend
            })
            .context("starting a vfio-user session thread")?;
        session = Some(Session { thread, holder: format!("pid {holder}") });
    }
    Ok(())
}

/// Sessions served in the caller's thread, one client stream at a time, with what `serve`
/// gives each of its clients: the same backend, the same protocol server, the same reset and
/// forgetting of the client's memory and eventfds after each session. For the fuzz target
/// `vfio_user`, which serves a hostile client and then a good one many times a second.
pub struct Sessions {
    server: Server,
    backend: Backend,
}

impl Sessions {
    /// A model of geometry `cfg` (flash in memory, holding its factory image), ready for a
    /// client. The server's listening socket is an abstract one nobody connects to: clients
    /// are handed over with [`Sessions::serve`].
    pub fn new(cfg: ModelConfig) -> anyhow::Result<Self> {
        use std::os::linux::net::SocketAddrExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let memory = Arc::new(MappedMemory::default());
        let mut device = Device::new(cfg, memory.clone(), Arc::new(SystemClock::default()))
            .map_err(|e| anyhow::anyhow!("model configuration: {e}"))?;
        let vectors = Arc::new(Vectors::default());
        let sink = vectors.clone();
        device.set_interrupt_sink(Box::new(move |v| sink.fire(v)));
        let name = format!("sluice-sessions-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr).context("binding an abstract socket")?;
        let server = Server::from_owned_fd(OwnedFd::from(listener), true, irqs(), regions());
        let backend =
            Backend { device: Arc::new(Mutex::new(device)), memory, vectors, config: ConfigSpace::new() };
        Ok(Sessions { server, backend })
    }

    /// Serves the client on `stream` until it disconnects (`Ok`) or sends a malformed message
    /// (answered with an error reply, then `Err`); then resets the device for the next client.
    pub fn serve(&mut self, stream: UnixStream) -> Result<(), vfio_user::Error> {
        let result = self.server.serve(stream, &mut self.backend);
        self.backend.disconnect();
        result
    }
}

/// The peer of a Unix stream as "PID (COMM)", from `SO_PEERCRED` and `/proc`; "unknown" when
/// the kernel does not say.
fn peer_name(stream: &UnixStream) -> String {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given, for the call's duration.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if rc != 0 || cred.pid <= 0 {
        return "unknown".into();
    }
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", cred.pid)).unwrap_or_default();
    format!("{} ({})", cred.pid, comm.trim())
}

/// Binds the socket, replacing a stale one and refusing a live one or a file that is not a
/// socket.
fn bind(socket: &Path) -> anyhow::Result<UnixListener> {
    let shown = socket.display();
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if !meta.file_type().is_socket() => {
            bail!("{shown} exists and is not a socket; refusing to replace it")
        }
        Ok(_) => match UnixStream::connect(socket) {
            Ok(_) => bail!("another server is listening on {shown}; stop it or choose another --socket"),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %shown, "removing a stale socket");
                std::fs::remove_file(socket).with_context(|| format!("removing the stale socket {shown}"))?;
            }
            Err(e) => return Err(e).with_context(|| format!("{shown} exists and cannot be probed")),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("looking at {shown}")),
    }
    UnixListener::bind(socket).with_context(|| format!("binding the vfio-user socket {shown}"))
}

/// Removes the socket file when the server stops, however it stops.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_values_take_a_kind_and_a_queue() {
        let p = parse_port("p1=veth0").unwrap();
        assert_eq!(p, PortSpec { index: 1, iface: "veth0".into(), kind: PortKind::Auto, queue: 0 });
        let p = parse_port("0=lb0,kind=af_xdp,queue=3").unwrap();
        assert_eq!((p.index, p.kind, p.queue), (0, PortKind::AfXdp, 3));
        assert_eq!(parse_port("p0=lb0,kind=af_packet").unwrap().kind, PortKind::AfPacket);
        for (bad, why) in [
            ("p0=lb0,kind=xdp", "unknown kind \"xdp\""),
            ("p0=lb0,queue=-1", "queue \"-1\" is not a number"),
            ("p0=lb0,speed=10", "unknown option \"speed=10\""),
            ("p0=lb0,", "unknown option \"\""),
        ] {
            let e = parse_port(bad).unwrap_err();
            assert!(e.usage && e.message.contains(why) && e.message.contains(bad), "{bad}: {e}");
        }
    }

    extern "C" fn ignore(_: libc::c_int) {}

    #[test]
    fn a_signal_during_a_session_does_not_end_it() {
        // Found by the fuzz target vfio_user: a signal interrupting the server's receive
        // (EINTR) ended the client's session without a reply. SIGUSR1, handled without
        // SA_RESTART, interrupts the session thread while it waits for the client.
        use std::io::{Read, Write};
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: a zeroed sigaction is a valid value; the handler does nothing and is
        // async-signal-safe; SIGUSR1 is used by no other test of this binary.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            assert_eq!(libc::sigaction(libc::SIGUSR1, &raw const action, std::ptr::null_mut()), 0);
        }
        let mut sessions = Sessions::new(ModelConfig::small(16)).unwrap();
        let (mut client, server) = UnixStream::pair().unwrap();
        let session = std::thread::spawn(move || sessions.serve(server).map_err(|e| e.to_string()));
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: the thread is alive (it waits for the client) and SIGUSR1 is handled.
        assert_eq!(unsafe { libc::pthread_kill(session.as_pthread_t(), libc::SIGUSR1) }, 0);
        std::thread::sleep(Duration::from_millis(50));
        let caps = b"{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576}}\0";
        let mut version = Vec::new();
        // Header: id 0, command 1 (VERSION), size, flags, error; then version 0.1.
        for word in [1u32 << 16, (20 + caps.len()) as u32, 0, 0] {
            version.extend_from_slice(&word.to_le_bytes());
        }
        version.extend_from_slice(&[0, 0, 1, 0]);
        version.extend_from_slice(caps);
        client.write_all(&version).unwrap();
        let mut reply = [0u8; 16];
        client.read_exact(&mut reply).expect("a reply to VERSION after the signal");
        assert_eq!(
            u32::from_le_bytes(reply[8..12].try_into().unwrap()),
            1,
            "a reply, not an error: {reply:?}"
        );
        let mut body = vec![0u8; u32::from_le_bytes(reply[4..8].try_into().unwrap()) as usize - 16];
        client.read_exact(&mut body).unwrap();
        drop(client);
        assert_eq!(session.join().unwrap(), Ok(()));
    }

    #[test]
    fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let dir = std::env::temp_dir().join(format!("sluice-sim-bind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nic.sock");
        let _ = std::fs::remove_file(&path);
        let live = UnixListener::bind(&path).unwrap();
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains("another server is listening"), "{e}");
        drop(live);
        let l = bind(&path).expect("a stale socket is replaced");
        drop(l);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
