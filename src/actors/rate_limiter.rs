//! The RateLimiter actor: one per OAuth client, shared by every Fetcher through a cloneable
//! [`RateLimiterHandle`]. Each HTTP attempt (retries included) first `acquire`s a [`Permit`]:
//! a GCRA rate token plus a concurrency slot. Dropping the permit — after the answer, on an
//! error, or because its requester was dropped or panicked — releases the slot; reporting the
//! outcome first ([`Permit::complete`]) feeds Retry-After pauses and adaptive throttling.
//!
//! The decisions live in [`crate::rate::Limiter`] (pure, tested on invented time); this actor
//! only queues waiters by priority (catch-up before backfill) and schedules a wake-up for the
//! instant the next one may leave, so there is no polling and no timer drift.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use crate::rate::{
    AdaptiveSettings, Feedback, Grant, LimiterState, Outcome, Priority, RateHeaders,
    RateLimiterSettings, SettingsError,
};
use crate::rate::{Decision, Limiter, WaitQueue};

/// The limiter actor is gone (its System stopped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate limiter is not running")]
pub struct LimiterGone;

/// Ask for a permit; it is sent through `reply` when granted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Acquire {
    pub priority: Priority,
    pub reply: oneshot::Sender<Permit>,
}

/// A permit ended (sent by [`Permit`]'s `Drop`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub grant: Grant,
    pub feedback: Feedback,
}

/// Snapshot of the limiter's state.
#[derive(Message)]
#[rtype(result = "LimiterState")]
pub struct GetState;

/// The right to send one HTTP attempt. Dropping it releases the concurrency slot.
#[derive(Debug)]
pub struct Permit {
    addr: Option<Addr<RateLimiter>>,
    grant: Grant,
    feedback: Feedback,
}

impl Permit {
    /// Reports how the attempt ended and releases the permit.
    pub fn complete(mut self, feedback: Feedback) {
        self.feedback = feedback;
    }

    /// The adaptive generation this permit was granted in.
    pub fn grant(&self) -> Grant {
        self.grant
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(addr) = self.addr.take() {
            addr.do_send(Release {
                grant: self.grant,
                feedback: std::mem::take(&mut self.feedback),
            });
        }
    }
}

struct Waiter {
    reply: oneshot::Sender<Permit>,
}

/// The actor. Start it with [`RateLimiterHandle::start`].
pub struct RateLimiter {
    limiter: Limiter,
    queue: WaitQueue<Waiter>,
    timer: Option<(Instant, SpawnHandle)>,
}

impl RateLimiter {
    pub fn new(settings: RateLimiterSettings) -> Result<Self, SettingsError> {
        let seed = rand::random();
        Ok(RateLimiter {
            limiter: Limiter::new(settings, seed)?,
            queue: WaitQueue::default(),
            timer: None,
        })
    }

    /// Grants permits to waiters for as long as the limiter allows, then sleeps until the
    /// instant the next one may leave (or until a release).
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.queue.retain(|w| !w.reply.is_closed());
        while !self.queue.is_empty() {
            match self.limiter.try_acquire(now) {
                Decision::Granted(grant) => {
                    let Some((_, waiter)) = self.queue.pop() else {
                        // Unreachable (queue not empty); give the slot back.
                        self.limiter.release(now, grant, &Feedback::default());
                        break;
                    };
                    let permit = Permit {
                        addr: Some(ctx.address()),
                        grant,
                        feedback: Feedback::default(),
                    };
                    if let Err(mut permit) = waiter.reply.send(permit) {
                        // The requester left between the check and now: release in place.
                        permit.addr = None;
                        self.limiter.release(now, grant, &Feedback::default());
                    }
                }
                Decision::WaitUntil(at) => {
                    self.wake_at(at, ctx);
                    break;
                }
                Decision::AtCapacity => break,
            }
        }
    }

    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if let Some((scheduled, handle)) = self.timer {
            if scheduled <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.pump(ctx);
        });
        self.timer = Some((at, handle));
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;
}

impl Handler<Acquire> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) {
        self.queue.push(msg.priority, Waiter { reply: msg.reply });
        self.pump(ctx);
    }
}

impl Handler<Release> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        self.limiter
            .release(Instant::now(), msg.grant, &msg.feedback);
        self.pump(ctx);
    }
}

impl Handler<GetState> for RateLimiter {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        let mut state = self.limiter.state(Instant::now(), chrono::Utc::now());
        state.waiting_catch_up = self.queue.len(Priority::CatchUp);
        state.waiting_backfill = self.queue.len(Priority::Backfill);
        MessageResult(state)
    }
}

/// A cloneable, `Send` handle to the RateLimiter actor.
#[derive(Clone)]
pub struct RateLimiterHandle {
    addr: Addr<RateLimiter>,
}

impl std::fmt::Debug for RateLimiterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimiterHandle")
    }
}

impl RateLimiterHandle {
    /// Validates the settings and starts the actor on the current arbiter (must run inside an
    /// actix System).
    pub fn start(settings: RateLimiterSettings) -> Result<Self, SettingsError> {
        let actor = RateLimiter::new(settings)?;
        Ok(RateLimiterHandle {
            addr: actor.start(),
        })
    }

    /// Starts the actor on the given arbiter.
    pub fn start_on(
        arbiter: &actix::dev::ArbiterHandle,
        settings: RateLimiterSettings,
    ) -> Result<Self, SettingsError> {
        let actor = RateLimiter::new(settings)?;
        Ok(RateLimiterHandle {
            addr: RateLimiter::start_in_arbiter(arbiter, |_| actor),
        })
    }

    pub fn from_addr(addr: Addr<RateLimiter>) -> Self {
        RateLimiterHandle { addr }
    }

    pub fn addr(&self) -> &Addr<RateLimiter> {
        &self.addr
    }

    /// Waits for a rate token and a concurrency slot. Cancel-safe: dropping the future while
    /// it waits gives nothing up; dropping the permit releases the slot.
    pub async fn acquire(&self, priority: Priority) -> Result<Permit, LimiterGone> {
        let (tx, rx) = oneshot::channel();
        if !self.addr.connected() {
            return Err(LimiterGone);
        }
        // do_send ignores the mailbox bound; if the actor is gone the message (and `tx`) is
        // dropped and `rx` reports it.
        self.addr.do_send(Acquire {
            priority,
            reply: tx,
        });
        rx.await.map_err(|_| LimiterGone)
    }

    /// A snapshot of the limiter's state.
    pub async fn state(&self) -> Result<LimiterState, LimiterGone> {
        self.addr.send(GetState).await.map_err(|_| LimiterGone)
    }

    /// Pause length used by tests and status: time left in the current Retry-After pause.
    pub async fn pause_remaining(&self) -> Result<Option<Duration>, LimiterGone> {
        Ok(self.state().await?.pause_remaining)
    }
}
