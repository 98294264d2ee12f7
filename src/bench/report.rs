//! What a run found, and its three forms: the table a person reads, JSON for machines, and the
//! scaling plot (SVG, written by hand: axes, ticks, labels, one line per series).

use serde::Serialize;
use std::fmt::Write as _;

/// Several runs of one figure: the median and the spread.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Median of the runs.
    pub median: f64,
    /// Lowest run.
    pub min: f64,
    /// Highest run.
    pub max: f64,
    /// Runs.
    pub runs: usize,
}

impl Summary {
    /// The summary of `samples` (empty: all zero).
    pub fn of(samples: &[f64]) -> Self {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) };
        Summary { median, min: v[0], max: v[n - 1], runs: n }
    }

    /// Half the range, as a percentage of the median.
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 { 0.0 } else { (self.max - self.min) / 2.0 / self.median * 100.0 }
    }

    /// Every value scaled by `k` (a change of unit).
    #[must_use]
    pub fn scaled(&self, k: f64) -> Self {
        Summary { median: self.median * k, min: self.min * k, max: self.max * k, runs: self.runs }
    }
}

/// A published figure to compare against.
#[derive(Clone, Debug, Serialize)]
pub struct Anchor {
    /// Who and what ("DPVS, 1 worker").
    pub name: String,
    /// Its value, in the figure's unit.
    pub value: f64,
    /// The figure's median / the anchor's value.
    pub ratio: f64,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// cps, insert, fastpath, memory, scaling.
    pub family: String,
    /// What was measured.
    pub name: String,
    /// The runs.
    pub value: Summary,
    /// Unit of the values.
    pub unit: String,
    /// How, and what else was seen.
    pub note: String,
    /// What it is compared with.
    pub anchors: Vec<Anchor>,
}

impl Figure {
    /// A figure of several runs.
    pub fn new(family: &str, name: &str, value: Summary, unit: &str, note: String) -> Self {
        Figure {
            family: family.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            note,
            anchors: Vec::new(),
        }
    }

    /// A figure measured once.
    pub fn single(family: &str, name: &str, value: f64, unit: &str, note: String) -> Self {
        Self::new(family, name, Summary::of(&[value]), unit, note)
    }

    /// Compares it with an anchor (in the same unit).
    #[must_use]
    pub fn against(mut self, name: &str, value: f64) -> Self {
        let ratio = if value > 0.0 { self.value.median / value } else { 0.0 };
        self.anchors.push(Anchor { name: name.into(), value, ratio });
        self
    }
}

/// One point of the scaling table.
#[derive(Clone, Debug, Serialize, Default)]
pub struct ScalePoint {
    /// Concurrent flows (connections for cps, installed records for fastpath).
    pub flows: u64,
    /// New connections per second at that many connections.
    pub cps: Option<Summary>,
    /// Mpps through the model's datapath with that many records.
    pub mpps: Option<Summary>,
    /// Heap in use with that many connections set up (the appliance included), bytes.
    pub heap: Option<u64>,
    /// Resident memory then, bytes.
    pub rss: Option<u64>,
}

/// The machine a run was made on.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory, bytes.
    pub memory: u64,
    /// Load average when the run started.
    pub load: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".into(), |s| s.trim().to_string());
        let memory = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map_or(0, |k| k * 1024);
        let load = read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        Machine { cpu, cpus: std::thread::available_parallelism().map_or(1, usize::from), memory, load }
    }
}

/// Everything one `sluice bench` found.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Report {
    /// When (UTC).
    pub date: String,
    /// Where.
    pub machine: Machine,
    /// "quick" or "full".
    pub mode: String,
    /// The rows.
    pub figures: Vec<Figure>,
    /// The scaling table.
    pub scaling: Vec<ScalePoint>,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// CPU time over wall time of the timed runs (below 1: the core was shared).
    pub cpu_share: f64,
}

/// A number for a person: three significant digits and k/M/G.
pub fn human(x: f64) -> String {
    let a = x.abs();
    let (v, s) = if a >= 1e9 {
        (x / 1e9, "G")
    } else if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e4 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{s}")
}

/// A flow count for a label: 1k, 10k, 1M...
pub fn flows_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => human(n as f64),
    }
}

impl Report {
    /// The table: every figure with its unit, median, range and spread, and its anchor ratio;
    /// then the scaling table; then the notes.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 6]> = vec![[
            "family".into(),
            "figure".into(),
            "median".into(),
            "unit".into(),
            "range (runs) spread".into(),
            "× anchor".into(),
        ]];
        for f in &self.figures {
            let v = &f.value;
            rows.push([
                f.family.clone(),
                f.name.clone(),
                human(v.median),
                f.unit.clone(),
                if v.runs > 1 {
                    format!("{}–{} ({}) ±{:.1}%", human(v.min), human(v.max), v.runs, v.spread_pct())
                } else {
                    "(1)".into()
                },
                f.anchors
                    .iter()
                    .map(|a| format!("{:.3}× {} ({})", a.ratio, a.name, human(a.value)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]);
        }
        let mut out = format!(
            "sluice bench ({}), {} — {} × {}, {} GiB, load {}\n\n",
            self.mode,
            self.date,
            self.machine.cpus,
            self.machine.cpu,
            self.machine.memory >> 30,
            self.machine.load
        );
        out += &align(&rows);
        if !self.scaling.is_empty() {
            let mut s: Vec<[String; 7]> = vec![[
                "flows".into(),
                "cps (conn/s)".into(),
                "cps range".into(),
                "fastpath (Mpps)".into(),
                "ns/packet".into(),
                "Mpps range".into(),
                "host RSS".into(),
            ]];
            for p in &self.scaling {
                let c = p.cps.as_ref();
                let m = p.mpps.as_ref();
                s.push([
                    flows_label(p.flows),
                    c.map_or("-".into(), |c| human(c.median)),
                    c.map_or(String::new(), |c| format!("{}–{}", human(c.min), human(c.max))),
                    m.map_or("-".into(), |m| format!("{:.2}", m.median)),
                    m.map_or("-".into(), |m| format!("{:.0}", 1e3 / m.median)),
                    m.map_or(String::new(), |m| format!("{:.2}–{:.2}", m.min, m.max)),
                    p.rss.map_or(String::new(), |r| format!("{} MiB", r >> 20)),
                ]);
            }
            out += "\nscaling\n";
            out += &align(&s);
        }
        out += "\nnotes\n";
        for f in self.figures.iter().filter(|f| !f.note.is_empty()) {
            let _ = writeln!(out, "  {} / {}: {}", f.family, f.name, f.note);
        }
        let _ = writeln!(
            out,
            "\n{:.0} s in all; rates are per CPU second of the process (all its threads), which used {:.0}% of a core per wall second",
            self.seconds,
            self.cpu_share * 100.0
        );
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The scaling plot: cps and Mpps against flows (log scale), one panel each, with the
    /// range of the runs as bars. `None` without scaling points.
    pub fn svg(&self) -> Option<String> {
        if self.scaling.is_empty() {
            return None;
        }
        let cps: Vec<(u64, Summary)> =
            self.scaling.iter().filter_map(|p| p.cps.clone().map(|c| (p.flows, c.scaled(1e-3)))).collect();
        let mpps: Vec<(u64, Summary)> =
            self.scaling.iter().filter_map(|p| p.mpps.clone().map(|m| (p.flows, m))).collect();
        let (w, h) = (760.0, 620.0);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">sluice bench: scaling with concurrent flows ({}, {})</text>\n",
            w / 2.0,
            self.mode,
            xml(&self.date)
        );
        panel(&mut s, 50.0, "new connections (k conn/s), 1 worker", &cps, "#1f77b4");
        panel(&mut s, 330.0, "model datapath hits (Mpps), 64-byte packets, batches of 32", &mpps, "#d62728");
        s += "</svg>\n";
        Some(s)
    }
}

fn xml(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One panel of the plot at height `top`: axes, decade ticks on x, five ticks on y, the line.
fn panel(s: &mut String, top: f64, title: &str, pts: &[(u64, Summary)], color: &str) {
    let (left, width, height) = (80.0, 640.0, 210.0);
    let bottom = top + height;
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        left + width / 2.0,
        top - 8.0,
        xml(title)
    );
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{width}\" height=\"{height}\" fill=\"none\" stroke=\"#444\"/>"
    );
    if pts.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">not measured</text>",
            left + width / 2.0,
            top + height / 2.0
        );
        return;
    }
    let lo = (pts.iter().map(|p| p.0).min().unwrap_or(1).max(1) as f64).log10().floor();
    let hi = (pts.iter().map(|p| p.0).max().unwrap_or(10).max(10) as f64).log10().ceil().max(lo + 1.0);
    let xpos = |n: u64| left + ((n.max(1) as f64).log10() - lo) / (hi - lo) * width;
    let ymax = nice(pts.iter().map(|p| p.1.max).fold(0.0, f64::max) * 1.1);
    let ypos = |v: f64| bottom - v / ymax * height;
    let mut d = lo as i32;
    while f64::from(d) <= hi {
        let n = 10u64.pow(d.unsigned_abs());
        let xx = xpos(n);
        let _ =
            writeln!(s, "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>");
        let _ = writeln!(
            s,
            "<text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 16.0,
            flows_label(n)
        );
        d += 1;
    }
    for k in 0..=5 {
        let v = ymax * f64::from(k) / 5.0;
        let yy = ypos(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>",
            left + width
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            yy + 4.0,
            human(v)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">concurrent flows (log scale)</text>",
        left + width / 2.0,
        bottom + 34.0
    );
    let line: Vec<String> =
        pts.iter().map(|(n, v)| format!("{:.1},{:.1}", xpos(*n), ypos(v.median))).collect();
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
        line.join(" ")
    );
    for (n, v) in pts {
        let (xx, yy) = (xpos(*n), ypos(v.median));
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"{color}\"/>",
            ypos(v.min),
            ypos(v.max)
        );
        let _ = writeln!(s, "<circle cx=\"{xx:.1}\" cy=\"{yy:.1}\" r=\"3.5\" fill=\"{color}\"/>");
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            xx + 6.0,
            yy - 6.0,
            human(v.median)
        );
    }
}

/// A round number at or above `v` (1, 2 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn align<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(k, (c, w))| {
                let pad = w - c.chars().count();
                // Numbers right-aligned (the median and the ratio), words left.
                if k == 2 { format!("{}{c}", " ".repeat(pad)) } else { format!("{c}{}", " ".repeat(pad)) }
            })
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
        if i == 0 {
            out += &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ");
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_the_median_and_the_range() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median, s.min, s.max, s.runs), (2.5, 1.0, 10.0, 4));
        assert_eq!(Summary::of(&[]).runs, 0);
        assert_eq!(human(183_250.0), "183k");
        assert_eq!(human(1_240_000.0), "1.24M");
        assert!((nice(0.83) - 1.0).abs() < 1e-9);
        assert!((nice(3.1) - 4.0).abs() < 1e-9);
    }
}
