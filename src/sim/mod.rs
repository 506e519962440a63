//! A faithful stand-in for the Genesys Cloud Analytics API (`sluice sim`, and in-process for
//! tests, benchmarks and the demo).
//!
//! It serves `/oauth/token` and the conversation/user detail queries and jobs with the shapes,
//! validation errors and limits of `shared/genesys-api.md` (section 0 fixes its choices): data
//! generated deterministically from the seed and lazily per hour ([`data`]), per-client request
//! windows, an org concurrency cap and a job cap answered with the platform's 429 ([`limits`]),
//! injected faults ([`faults`]), and a background integration whose 429s are counted as
//! collateral damage ([`background`]), and Genesys' nightly analytics pipeline that revises and
//! deletes old data ([`pipeline`]). `GET /__sim/stats`, `GET /__sim/expected` and
//! `GET /__sim/expected/digests` (content digests, [`crate::digest`]) give the ground truth
//! tests and benchmarks check against.
pub mod auth;
pub mod background;
pub mod config;
pub mod data;
pub mod directory;
pub mod faults;
pub mod jobs;
pub mod limits;
pub mod pipeline;
pub mod query;
pub mod server;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::{web, App, HttpServer};
use chrono::{DateTime, Utc};

pub use config::{
    SimArgs, SimConfig, BACKGROUND_CLIENT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
pub use data::Dataset;
use server::SimState;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the simulator thread failed to start: {0}")]
    Thread(String),
}

/// A running simulator (its own thread and actix System). Stops on [`SimHandle::stop`] or drop.
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<SimState>,
    server: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Starts a simulator; returns once it is listening.
pub fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    let state = Arc::new(SimState::new(cfg));
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    let thread = std::thread::Builder::new()
        .name("sluice-sim".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(st.clone());
                let workers = st.cfg.workers;
                let bind = (st.cfg.bind, st.cfg.port);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .configure(server::configure)
                })
                .workers(workers)
                .tcp_nodelay(true)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(bind);
                let server = match server {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(SimError::Bind {
                            addr: format!("{}:{}", bind.0, bind.1),
                            source: e,
                        }));
                        return;
                    }
                };
                let addr = server.addrs().first().copied();
                let running = server.run();
                match addr {
                    Some(a) => {
                        let _ = tx.send(Ok((a, running.handle())));
                    }
                    None => {
                        let _ = tx.send(Err(SimError::Thread("no listening address".into())));
                        return;
                    }
                }
                background::spawn(st);
                let _ = running.await;
            });
        })
        .map_err(|e| SimError::Thread(e.to_string()))?;
    match rx.recv() {
        Ok(Ok((addr, server))) => Ok(SimHandle {
            addr,
            state,
            server: Some(server),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(SimError::Thread("the simulator thread ended early".into()))
        }
    }
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: serves `/oauth/token` and `/api/v2/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fixes the simulated clock at `t` (it stays there until moved again).
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.state.clock.set(t);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.state.clock.now()
    }

    /// The dataset this simulator serves.
    pub fn dataset(&self) -> &Dataset {
        &self.state.dataset
    }

    /// The `/__sim/stats` document.
    pub fn stats(&self) -> serde_json::Value {
        self.state.stats.snapshot(&self.state.limits.lock())
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            // The stop command is sent at once; the returned future only waits for completion.
            drop(s.stop(false));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `sluice sim`: runs the simulator until Ctrl-C.
pub fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let cfg = SimConfig::from(args);
    let sim = start(cfg)?;
    log::info!(
        "Genesys Cloud API simulator listening on {}",
        sim.base_url()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    log::info!("stopping the simulator");
    sim.stop();
    Ok(())
}
