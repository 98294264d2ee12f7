//! PLACEHOLDER until the schedulers land (branch `sched`): round robin for every kind.
#![allow(missing_docs, clippy::missing_docs_in_private_items)]

use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sh,
    Mh,
}

impl SchedulerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
        }
    }
}

impl std::fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "rr" => SchedulerKind::Rr,
            "wrr" => SchedulerKind::Wrr,
            "lc" => SchedulerKind::Lc,
            "wlc" => SchedulerKind::Wlc,
            "sh" => SchedulerKind::Sh,
            "mh" => SchedulerKind::Mh,
            _ => return Err(format!("unknown scheduler {s:?}")),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendView {
    pub weight: u32,
    pub up: bool,
    pub active: u32,
    pub inactive: u32,
    pub id: u64,
}

impl BackendView {
    pub fn available(&self) -> bool {
        self.weight > 0 && self.up
    }
}

pub trait Scheduler: Send + std::fmt::Debug {
    fn pick(&mut self, backends: &[BackendView], client_hash: u64) -> Option<usize>;
    fn kind(&self) -> SchedulerKind;
    fn clone_box(&self) -> Box<dyn Scheduler>;
}

#[derive(Clone, Debug)]
struct Rr(SchedulerKind, usize);

impl Scheduler for Rr {
    fn pick(&mut self, backends: &[BackendView], _client_hash: u64) -> Option<usize> {
        for _ in 0..backends.len() {
            self.1 = (self.1 + 1) % backends.len();
            if backends[self.1].available() {
                return Some(self.1);
            }
        }
        None
    }
    fn kind(&self) -> SchedulerKind {
        self.0
    }
    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

pub fn build(kind: SchedulerKind, _backends: &[BackendView]) -> Box<dyn Scheduler> {
    Box::new(Rr(kind, usize::MAX - 1))
}

pub const MAGLEV_TABLE_SIZE: usize = 65537;
