//! Fetchers: a pool of thin actors under [`actix::Supervisor`], each fetching one planned
//! partition at a time through [`crate::fetch::block`] and reporting the [`Outcome`].
//!
//! Guarantees:
//! - A Fetcher whose work panics reports the partition back (to be re-queued) and is restarted
//!   by its Supervisor with fresh state.
//! - A cancelled fetch (shutdown) is reported as `Released`.

use std::sync::Arc;

use actix::prelude::*;

pub use crate::actors::work::{Outcome, Work};
pub use crate::fetch::{Availability, FaultHooks, FetchContext, FetchCounters};

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

/// Fetch this partition under this lease.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FetchPartition {
    pub work: Work,
    pub lease_token: String,
}

/// Stop the current partition now (shutdown); it is reported as `Released`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CancelFetch;

/// A Fetcher's report to the Coordinator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FetchDone {
    pub fetcher: usize,
    pub work: Work,
    pub lease_token: String,
    pub outcome: Outcome,
}

/// One Fetcher of the pool.
pub struct Fetcher {
    index: usize,
    ctx: Arc<FetchContext>,
    report: Recipient<FetchDone>,
    current: Option<tokio::task::AbortHandle>,
}

impl Fetcher {
    pub fn new(index: usize, ctx: Arc<FetchContext>, report: Recipient<FetchDone>) -> Self {
        Fetcher {
            index,
            ctx,
            report,
            current: None,
        }
    }

    /// Starts a supervised Fetcher.
    pub fn start_supervised(
        index: usize,
        ctx: Arc<FetchContext>,
        report: Recipient<FetchDone>,
    ) -> Addr<Fetcher> {
        actix::Supervisor::start(move |_| Fetcher::new(index, ctx, report))
    }
}

impl Actor for Fetcher {
    type Context = Context<Self>;
}

impl actix::Supervised for Fetcher {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::warn!("fetcher {} restarting", self.index);
        if let Some(h) = self.current.take() {
            h.abort();
        }
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let p = e.into_panic();
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

impl Handler<FetchPartition> for Fetcher {
    type Result = ();

    fn handle(&mut self, msg: FetchPartition, ctx: &mut Context<Self>) {
        let FetchPartition { work, lease_token } = msg;
        let task = actix_rt::spawn(crate::fetch::block(
            self.ctx.clone(),
            work.clone(),
            lease_token.clone(),
        ));
        self.current = Some(task.abort_handle());
        let report = self.report.clone();
        let index = self.index;
        ctx.spawn(task.into_actor(self).map(move |res, act, ctx| {
            act.current = None;
            let outcome = match res {
                Ok(o) => o,
                Err(e) if e.is_cancelled() => Outcome::Released,
                Err(e) => {
                    let why = panic_text(e);
                    log::error!(
                        "fetcher {index} crashed on {:?} {}: {why}; restarting it",
                        work.dataset,
                        work.range
                    );
                    // The Supervisor restarts the actor with fresh state.
                    ctx.stop();
                    Outcome::Retry {
                        error: format!("fetcher crashed: {why}"),
                    }
                }
            };
            report.do_send(FetchDone {
                fetcher: index,
                work,
                lease_token,
                outcome,
            });
        }));
    }
}

impl Handler<CancelFetch> for Fetcher {
    type Result = ();

    fn handle(&mut self, _: CancelFetch, _: &mut Context<Self>) {
        if let Some(h) = self.current.take() {
            h.abort();
        }
    }
}
