//! Workers on threads of their own: the fork-join of a run-to-completion loop.
//!
//! One polling thread owns the NIC. Each round it takes every exception ring's batch (serial:
//! the rings are the device's), hands each worker that has packets its batch over a crossbeam
//! channel to the worker's own thread (a worker with none runs its timers in place: waking a
//! thread and waiting for it costs more than that, and an idle appliance polls often) — the worker itself travels with it, so no two threads ever hold it and
//! nothing on the packet path is locked — runs worker 0 in place meanwhile, then takes the
//! workers back in worker order and applies what each asked for (serial again: installs, routes,
//! injects). Each worker's decisions depend only on its own input, and the serial phases run in a
//! fixed order, so a round gives the same result as running the workers one after another:
//! replay stays deterministic with any number of workers.

use crate::worker::{Out, Punt, Worker};
use crossbeam_channel::{Receiver, Sender, bounded};

/// A worker's round: its packets and the time.
pub(super) struct Job {
    pub worker: Worker,
    pub punts: Vec<Punt>,
    pub now_ns: u64,
    pub out: Out,
}

/// Runs one round of a worker: its packets, then its timers.
pub(super) fn run_job(job: &mut Job) {
    for p in job.punts.drain(..) {
        job.worker.handle(p, job.now_ns, &mut job.out);
    }
    job.worker.advance(job.now_ns, &mut job.out);
}

/// A worker thread.
struct Lane {
    jobs: Sender<Job>,
    done: Receiver<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The threads of workers 1..n (worker 0 runs on the polling thread).
pub(super) struct Pool {
    lanes: Vec<Lane>,
}

impl Pool {
    /// Threads for workers 1..`workers`.
    pub fn new(workers: u16) -> Pool {
        let lanes = (1..workers)
            .map(|w| {
                let (jobs, jobs_rx) = bounded::<Job>(1);
                let (done_tx, done) = bounded::<Job>(1);
                let thread = std::thread::Builder::new()
                    .name(format!("worker {w}"))
                    .spawn(move || {
                        while let Ok(mut job) = jobs_rx.recv() {
                            run_job(&mut job);
                            if done_tx.send(job).is_err() {
                                return;
                            }
                        }
                    })
                    .ok();
                Lane { jobs, done, thread }
            })
            .collect();
        Pool { lanes }
    }

    /// Sends worker `w`'s job (w ≥ 1) to its thread; if the thread is gone, runs it here.
    pub fn start(&self, w: usize, mut job: Job) -> Option<Job> {
        match self.lanes.get(w - 1) {
            Some(lane) if lane.thread.is_some() => match lane.jobs.send(job) {
                Ok(()) => None,
                Err(e) => {
                    let mut job = e.into_inner();
                    run_job(&mut job);
                    Some(job)
                }
            },
            _ => {
                run_job(&mut job);
                Some(job)
            }
        }
    }

    /// Waits for worker `w`'s job to come back.
    pub fn finish(&self, w: usize) -> Option<Job> {
        self.lanes.get(w - 1)?.done.recv().ok()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            // Closing the job channel ends the thread's loop.
            let (dead, _) = bounded(0);
            drop(std::mem::replace(&mut lane.jobs, dead));
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
    }
}
