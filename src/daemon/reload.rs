//! Reloading the configuration (SIGHUP, `sluice reload`): the file is read and checked on a
//! thread of its own while the main loop goes on; the result is applied between rounds (the
//! services, their servers, schedulers and health checks, and the probes; what needs a restart
//! is reported and left running) and everyone who asked gets the answer.

use super::server::Answer;
use super::{Daemon, probe, setup};
use crate::config::{self, Config};
use crate::control::proto::Response;

/// A reload in progress: the file is read and checked on a thread of its own (a file of
/// 100k services takes a while), so the main loop keeps forwarding and answering meanwhile;
/// it applies the result and answers everyone who asked.
pub(super) struct Reload {
    result: crossbeam_channel::Receiver<Result<Config, config::ConfigError>>,
    waiting: Vec<crossbeam_channel::Sender<Answer>>,
}

impl Daemon {
    /// Starts a reload (SIGHUP, or `sluice reload` whose answer goes to `reply`); one already
    /// under way takes the new asker too.
    pub(super) fn start_reload(&mut self, reply: Option<crossbeam_channel::Sender<Answer>>) {
        if let Some(r) = &mut self.reload {
            r.waiting.extend(reply);
            return;
        }
        let (tx, result) = crossbeam_channel::bounded(1);
        let path = self.config_path.clone();
        let spawned = std::thread::Builder::new().name("reload".into()).spawn(move || {
            let _ = tx.send(config::load(&path));
        });
        if let Err(e) = spawned {
            if let Some(reply) = reply {
                let _ = reply.send(Answer::Control(Response::err(format!("cannot start the reload: {e}"))));
            }
            return;
        }
        self.reload = Some(Reload { result, waiting: reply.into_iter().collect() });
    }

    /// Applies a reload whose file has been read and checked, and answers who asked. Returns 1
    /// when it did, 0 when none finished.
    pub(super) fn finish_reload(&mut self) -> usize {
        let Some(r) = &self.reload else { return 0 };
        let loaded = match r.result.try_recv() {
            Ok(loaded) => loaded,
            Err(crossbeam_channel::TryRecvError::Empty) => return 0,
            // The reading thread died without an answer (it cannot panic on bad input; this is
            // only defensive): answer and forget it.
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                let waiting = self.reload.take().map(|r| r.waiting).unwrap_or_default();
                for w in waiting {
                    let _ = w.send(Answer::Control(Response::err("the reload stopped without a result")));
                }
                return 1;
            }
        };
        let waiting = self.reload.take().map(|r| r.waiting).unwrap_or_default();
        let response = match loaded {
            Ok(new) => match self.apply_reload(new) {
                Ok(()) => {
                    tracing::warn!("configuration reloaded");
                    Response::ok(serde_json::Value::Null)
                }
                Err(e) => {
                    tracing::error!("reload refused, the running configuration stays: {e}");
                    Response::invalid(e)
                }
            },
            Err(e) => {
                tracing::error!("reload refused, the running configuration stays: {e}");
                Response::invalid(e)
            }
        };
        for w in waiting {
            let _ = w.send(Answer::Control(response.clone()));
        }
        1
    }

    /// Applies a configuration read and checked by a reload: its services (servers, weights,
    /// schedulers, health checks), without touching established connections. Device, port,
    /// route and control changes need a restart; they are reported and ignored.
    fn apply_reload(&mut self, new: Config) -> Result<(), String> {
        for (what, same) in [
            ("[device]", new.device == self.cfg.device),
            ("[[port]]", new.ports == self.cfg.ports),
            ("[[route]]", new.routes == self.cfg.routes),
            ("[control]", new.control == self.cfg.control),
            ("[routing]", new.routing == self.cfg.routing),
            ("[sync]", new.sync == self.cfg.sync),
        ] {
            if !same {
                tracing::warn!("{what} changed: that takes a restart (sluice run), the running values stay");
            }
        }
        self.engine.replace_services(setup::services(&new)).map_err(|e| e.to_string())?;
        self.cfg.services = new.services;
        self.restart_health();
        if new.probes != self.cfg.probes {
            if let Some(p) = self.probes.take() {
                p.stop();
            }
            self.probes = probe::Prober::start(&new.probes);
            self.cfg.probes = new.probes;
        }
        Ok(())
    }
}
