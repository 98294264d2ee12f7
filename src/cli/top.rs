//! `sluice top`: a live view of a daemon, refreshed every `--interval-ms` over one control
//! connection. It owns the terminal while it runs (raw mode, alternate screen) and gives it
//! back on `q`, Esc, Ctrl-C, SIGTERM/SIGHUP/SIGINT, a panic (ratatui's hook) and when the
//! daemon goes away; then it says why on stderr and exits 1.
//!
//! What it shows is [`render`], a pure function of [`TopState`], so tests draw it on
//! ratatui's `TestBackend`. Rates are measured here from successive counters (connections
//! created, NIC packets sent on hits, slow-path packets, installs), beside the daemon's own
//! `rates`; a counter that goes backwards (the daemon restarted) skips one sample.
//!
//! When stdout is not a terminal, `top` refuses (exit 2) and names `sluice stats` instead:
//! a snapshot is what `stats` is for, and a script wants its `--json`.

use super::Failure;
use super::client::Client;
use super::format::{percent, uptime};
use crate::control::proto::{Rates, Request, StatsReply};
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Sparkline, Table};
use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Samples of each rate kept for the sparklines (wider than any terminal needs).
const HISTORY: usize = 512;

/// Everything the view shows.
#[derive(Debug, Clone, Default)]
pub struct TopState {
    /// The socket, for the header.
    pub socket: String,
    /// The refresh interval.
    pub interval: Duration,
    /// The latest counters.
    pub stats: Option<StatsReply>,
    /// Rates measured from the last two samples (none before the second).
    pub measured: Option<Rates>,
    /// Measured rates, oldest first: connections, NIC packets, slow-path packets, installs.
    pub history: [VecDeque<u64>; 4],
    /// Why the view stopped, once the daemon is gone or refused.
    pub gone: Option<String>,
    /// The previous sample and when it was taken (time since the start).
    prev: Option<(Duration, StatsReply)>,
}

impl TopState {
    /// A view of the daemon at `socket`, refreshed every `interval`.
    pub fn new(socket: &Path, interval: Duration) -> Self {
        TopState { socket: socket.display().to_string(), interval, ..TopState::default() }
    }

    /// Takes a new sample, taken `at` (a monotonic time since the start).
    #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    pub fn update(&mut self, stats: StatsReply, at: Duration) {
        self.measured = None;
        if let Some((then, prev)) = &self.prev {
            let dt = at.saturating_sub(*then).as_secs_f64();
            let pairs = [
                (prev.slowpath.created, stats.slowpath.created),
                (prev.nic.tx_packets, stats.nic.tx_packets),
                (prev.slowpath.packets, stats.slowpath.packets),
                (prev.table.installs, stats.table.installs),
            ];
            let restarted = stats.uptime_s < prev.uptime_s || pairs.iter().any(|(a, b)| b < a);
            if dt > 0.0 && !restarted {
                let r = pairs.map(|(a, b)| (b - a) as f64 / dt);
                for (h, v) in self.history.iter_mut().zip(r) {
                    if h.len() == HISTORY {
                        h.pop_front();
                    }
                    h.push_back(v.round() as u64);
                }
                self.measured = Some(Rates {
                    connections: r[0],
                    nic_packets: r[1],
                    slowpath_packets: r[2],
                    installs: r[3],
                });
            }
        }
        self.prev = Some((at, stats.clone()));
        self.stats = Some(stats);
    }
}

/// Draws the whole view.
pub fn render(frame: &mut Frame<'_>, state: &TopState) {
    let [header, gauge, rates, bottom, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Length(6),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_header(frame, header, state);
    let Some(s) = &state.stats else {
        frame.render_widget(Paragraph::new("waiting for the daemon…"), gauge);
        return;
    };
    let t = &s.table;
    let ratio = if t.capacity == 0 { 0.0 } else { (f64::from(t.occupancy) / f64::from(t.capacity)).min(1.0) };
    let label = format!(
        "{} / {} flows ({})",
        t.occupancy,
        t.capacity,
        percent(t.occupancy.into(), t.capacity.into())
    );
    let color = if ratio >= 0.9 {
        Color::Red
    } else if ratio >= 0.7 {
        Color::Yellow
    } else {
        Color::Green
    };
    frame.render_widget(
        Gauge::default()
            .block(Block::bordered().title(" NIC flow table "))
            .gauge_style(Style::new().fg(color))
            .ratio(ratio)
            .label(label),
        gauge,
    );
    render_rates(frame, rates, state, s);
    let [vips, drops] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    if s.servers.is_empty() {
        render_vips(frame, vips, s);
    } else {
        let [v, servers] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(vips);
        render_vips(frame, v, s);
        render_servers(frame, servers, s);
    }
    render_drops(frame, drops, s);
    let help = match &state.gone {
        Some(why) => Line::from(Span::styled(
            format!(" daemon gone: {why}"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        None => Line::from(" q quit").style(Style::new().add_modifier(Modifier::DIM)),
    };
    frame.render_widget(Paragraph::new(help), footer);
}

fn render_header(frame: &mut Frame<'_>, area: Rect, state: &TopState) {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut first = vec![Span::styled("sluice top", bold)];
    let mut second = Vec::new();
    if let Some(s) = &state.stats {
        first.extend([
            Span::raw(format!("  device {}", s.device)),
            Span::raw(format!("  uptime {}", uptime(s.uptime_s))),
            Span::raw(format!("  workers {}", s.workers)),
        ]);
        let sp = &s.slowpath;
        second.push(Span::raw(format!(
            "connections {}  offloaded {} ({})  half-open {}  nic hits {}  punts {}",
            sp.connections,
            sp.offloaded_now,
            percent(sp.offloaded_now, sp.connections),
            sp.half_open,
            s.nic.hits,
            s.nic.punts,
        )));
    }
    let third = Line::from(format!("{}  every {:.1} s", state.socket, state.interval.as_secs_f64()))
        .style(Style::new().add_modifier(Modifier::DIM));
    frame.render_widget(Paragraph::new(vec![Line::from(first), Line::from(second), third]), area);
}

fn render_rates(frame: &mut Frame<'_>, area: Rect, state: &TopState, s: &StatsReply) {
    let block = Block::bordered().title(" rates per second: measured (daemon's) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = Layout::vertical([Constraint::Length(1); 4]).split(inner);
    let names = ["connections/s", "nic packets/s", "slow-path packets/s", "installs/s"];
    let daemon = [s.rates.connections, s.rates.nic_packets, s.rates.slowpath_packets, s.rates.installs];
    let measured =
        state.measured.as_ref().map(|m| [m.connections, m.nic_packets, m.slowpath_packets, m.installs]);
    for i in 0..4 {
        let [text, spark] = Layout::horizontal([Constraint::Length(44), Constraint::Min(0)]).areas(rows[i]);
        let now = measured.map_or_else(|| "-".to_owned(), |m| format!("{:.1}", m[i]));
        let line = format!("{:<20}{now:>11} ({:.1})", names[i], daemon[i]);
        frame.render_widget(Paragraph::new(line), text);
        let h = &state.history[i];
        let shown = h.iter().skip(h.len().saturating_sub(spark.width as usize)).copied();
        frame.render_widget(Sparkline::default().data(shown).style(Style::new().fg(Color::Cyan)), spark);
    }
}

fn render_vips(frame: &mut Frame<'_>, area: Rect, s: &StatsReply) {
    let mut vips: Vec<(&String, &u64)> = s.vips.iter().collect();
    vips.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let right = |s: String| Line::from(s).alignment(Alignment::Right);
    let rows = vips.into_iter().map(|(vip, n)| Row::new([Line::from(vip.clone()), right(n.to_string())]));
    let header = Row::new([Line::from("VIP/protocol"), right("connections".into())]);
    let table = Table::new(rows, [Constraint::Min(24), Constraint::Length(12)])
        .header(header.style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::bordered().title(" top VIPs by connections "));
    frame.render_widget(table, area);
}

/// Each real server's rates over the daemon's last interval, host path and NIC together,
/// busiest (bytes in and out) first.
fn render_servers(frame: &mut Frame<'_>, area: Rect, s: &StatsReply) {
    let mut servers: Vec<&crate::control::proto::ServerRate> = s.servers.iter().collect();
    servers.sort_by(|a, b| {
        (b.rate.in_bps + b.rate.out_bps)
            .cmp(&(a.rate.in_bps + a.rate.out_bps))
            .then(a.backend.cmp(&b.backend))
    });
    let right = |s: String| Line::from(s).alignment(Alignment::Right);
    let rows = servers.into_iter().map(|r| {
        Row::new([
            Line::from(format!("{} {}", r.backend, r.vip)),
            right(r.rate.cps.to_string()),
            right(r.rate.in_pps.to_string()),
            right(r.rate.out_pps.to_string()),
            right(super::format::human(r.rate.in_bps)),
            right(super::format::human(r.rate.out_bps)),
        ])
    });
    let header = Row::new([
        Line::from("server VIP"),
        right("CPS".into()),
        right("InPPS".into()),
        right("OutPPS".into()),
        right("InBPS".into()),
        right("OutBPS".into()),
    ]);
    let widths = [
        Constraint::Min(24),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(header.style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::bordered().title(" servers per second (host + NIC) "));
    frame.render_widget(table, area);
}

fn render_drops(frame: &mut Frame<'_>, area: Rect, s: &StatsReply) {
    let mut items: Vec<(String, u64)> = Vec::new();
    items.extend(s.nic_drops.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (format!("nic {k}"), *n)));
    items.extend(s.slowpath_drops.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (format!("host {k}"), *n)));
    if s.table.insert_failures > 0 {
        items.push(("table full (kept on host)".into(), s.table.insert_failures));
    }
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let title = format!(" drops: nic {} host {} ", s.nic.drops, s.slowpath_drops.values().sum::<u64>());
    let lines: Vec<Line<'_>> = if items.is_empty() {
        vec![Line::from("none")]
    } else {
        items.into_iter().map(|(k, n)| Line::from(format!("{k:<28} {n:>10}"))).collect()
    };
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title)), area);
}

/// Whether a key quits: q, Esc, Ctrl-C.
fn quits(k: &KeyEvent) -> bool {
    matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc)
        || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
}

/// One sample, a refusal being an error.
fn fetch(client: &mut Client) -> Result<StatsReply, String> {
    let response = client.call(&Request::Stats).map_err(|e| e.to_string())?;
    if !response.ok {
        return Err(response.error.unwrap_or_else(|| "the daemon refused (no reason given)".into()));
    }
    serde_json::from_value(response.data).map_err(|e| format!("the daemon's answer is not understood: {e}"))
}

/// Runs the live view until the user quits (Ok) or the daemon goes away (Failed).
pub fn run(socket: &Path, interval: Duration) -> Result<(), Failure> {
    if !std::io::stdout().is_terminal() {
        return Err(Failure::Usage(
            "top needs a terminal and stdout is not one: for a snapshot use sluice stats (--json for scripts)".into(),
        ));
    }
    let mut client = Client::connect(socket)?;
    let mut state = TopState::new(client.path(), interval);
    let start = Instant::now();
    state.update(fetch(&mut client).map_err(Failure::Failed)?, start.elapsed());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Failure::Failed(format!("cannot handle signals: {e}")))?;
    }
    let mut terminal =
        ratatui::try_init().map_err(|e| Failure::Failed(format!("cannot set up the terminal: {e}")))?;
    let result = event_loop(&mut terminal, &mut client, &mut state, start, &stop);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    client: &mut Client,
    state: &mut TopState,
    start: Instant,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Failed(format!("terminal: {e}"));
    let mut next = Instant::now() + state.interval;
    loop {
        let now = Instant::now();
        if now >= next {
            next = (next + state.interval).max(now);
            match fetch(client) {
                Ok(s) => state.update(s, start.elapsed()),
                Err(why) => state.gone = Some(why),
            }
        }
        terminal.draw(|f| render(f, state)).map_err(io)?;
        if let Some(why) = &state.gone {
            // Let the banner be read for a moment (a key cuts it short), then give back the
            // terminal and say it on stderr too.
            let _ = event::poll(Duration::from_millis(1500));
            return Err(Failure::Failed(format!("daemon gone: {why}")));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // A terminal that went away (its window closed without a SIGHUP reaching us) reads as
        // an endless stream of events: notice it rather than spin.
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return Ok(());
        }
        // Wake at least every 200 ms to notice a signal.
        let wait = next.saturating_duration_since(Instant::now()).min(Duration::from_millis(200));
        if event::poll(wait).map_err(io)? {
            match event::read().map_err(io)? {
                Event::Key(k) if k.kind == KeyEventKind::Press && quits(&k) => return Ok(()),
                Event::Key(_) | Event::Resize(..) => {}
                // Mouse, focus, paste: nothing to redraw for; do not spin on a stream of them.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
