//! The leader-lease keeper: one thread per engine that holds (or waits for) the OAuth
//! client's leader lease in the database, and tells the engine its [`Role`].
//!
//! Why a thread of its own, with its own connection: the lease must be renewed on time even
//! while the Writer is busy with a long batch, and a standby must notice an expired lease
//! without any other work going on. The rules themselves are in
//! [`crate::storage::instances`].
//!
//! Guarantees:
//! - Active: renews every third of `lease_for`. When it cannot renew for two thirds of the
//!   lease (database unreachable), it steps down to standby before the lease can expire, so
//!   two instances never fetch at once for longer than a clock skew.
//! - Standby: polls every sixth of `lease_for` (at least every 250 ms); takes the lease as
//!   soon as it is free or expired, gives back the partitions the old leader held, then says
//!   `Active`.
//! - Stop: gives the lease up (a standby takes over at its next poll) and removes the
//!   instance's heartbeat row.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::storage::checkpoint::new_lease_token;
use crate::storage::instances::{self, LeaderAnswer, Role};
use crate::storage::{connect, Connection, DatabaseUrl, StorageError};

/// What the keeper needs.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    pub url: DatabaseUrl,
    /// The OAuth client id: one leader per client and database.
    pub client_key: String,
    /// This instance (`sluice@HOST:PID`), also its partition-lease owner name.
    pub instance: String,
    /// `sluice@HOST:`: a holder with this prefix whose process is gone (kill -9 on this host)
    /// is taken over at once instead of after the lease.
    pub host_prefix: String,
    /// `backfill`, `run`, … (shown by `sluice status`).
    pub command: String,
    pub lease_for: Duration,
    pub started_at: DateTime<Utc>,
}

/// The running keeper. Dropping it stops it (and gives the lease up).
pub struct LeaderKeeper {
    role: tokio::sync::watch::Receiver<Option<Role>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LeaderKeeper {
    /// Starts the keeper thread; its first answer comes after one database round trip.
    pub fn start(settings: LeaderSettings) -> std::io::Result<LeaderKeeper> {
        let (role_tx, role) = tokio::sync::watch::channel(None);
        let (stop, stop_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sluice-leader".into())
            .spawn(move || keep(settings, role_tx, stop_rx))?;
        Ok(LeaderKeeper {
            role,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The role now and its changes (`None` until the first answer).
    pub fn role(&self) -> tokio::sync::watch::Receiver<Option<Role>> {
        self.role.clone()
    }

    /// Waits for the first answer.
    pub async fn first_role(&self) -> Role {
        let mut rx = self.role.clone();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                return Role::Standby;
            }
        }
    }

    /// Stops the thread and waits for it (it gives the lease up first). Blocks for one
    /// database round trip: call off the async executor.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LeaderKeeper {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The keeper's state between two polls.
struct Keeper {
    settings: LeaderSettings,
    token: String,
    conn: Option<Connection>,
    role: Option<Role>,
    last_held: Option<Instant>,
}

impl Keeper {
    fn conn(&mut self) -> Result<&mut Connection, StorageError> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.settings.url)?);
        }
        self.conn.as_mut().ok_or(StorageError::Unavailable {
            attempts: 1,
            last: "no connection".into(),
        })
    }

    /// One poll: claim or renew, step down when the lease cannot be proven held.
    fn poll(&mut self) -> Role {
        if matches!(&self.settings.url, DatabaseUrl::Sqlite(p) if p.as_os_str() == ":memory:") {
            // A private in-memory database cannot be shared: no other instance to wait for.
            return Role::Active;
        }
        let now = Utc::now();
        let (key, instance, lease_for) = (
            self.settings.client_key.clone(),
            self.settings.instance.clone(),
            self.settings.lease_for,
        );
        let token = self.token.clone();
        let host = self.settings.host_prefix.clone();
        let answer = self.conn().and_then(|c| {
            match instances::claim_leader(c, &key, &instance, &token, lease_for, now)? {
                LeaderAnswer::HeldElsewhere { holder, until } => {
                    let dead = holder
                        .strip_prefix(host.as_str())
                        .and_then(|pid| pid.parse::<u32>().ok())
                        .is_some_and(|pid| !crate::actors::writer::process_alive(pid));
                    if dead
                        && instances::take_over_leader(
                            c, &key, &holder, &instance, &token, lease_for, now,
                        )?
                    {
                        log::info!("{holder} (this host) has ended: taking its leader lease over");
                        Ok(LeaderAnswer::Held)
                    } else {
                        Ok(LeaderAnswer::HeldElsewhere { holder, until })
                    }
                }
                held => Ok(held),
            }
        });
        let role = match answer {
            Ok(LeaderAnswer::Held) => {
                if self.role != Some(Role::Active) {
                    match self
                        .conn()
                        .and_then(|c| instances::reclaim_foreign_leases(c, &instance, now))
                    {
                        Ok(0) => {}
                        Ok(n) => log::info!(
                            "took over {n} partitions the previous active instance still held"
                        ),
                        Err(e) => log::warn!("cannot reclaim the old leader's partitions: {e}"),
                    }
                    log::info!("holding the leader lease of this OAuth client: active");
                }
                self.last_held = Some(Instant::now());
                Role::Active
            }
            Ok(LeaderAnswer::HeldElsewhere { holder, until }) => {
                if self.role != Some(Role::Standby) {
                    log::info!(
                        "{holder} holds the leader lease of this OAuth client (until {}): \
                         standing by",
                        until.format("%H:%M:%S%.3f")
                    );
                }
                Role::Standby
            }
            Err(e) => {
                self.conn = None;
                let stale = self
                    .last_held
                    .is_none_or(|t| t.elapsed() >= lease_for * 2 / 3);
                match self.role {
                    Some(Role::Active) if !stale => {
                        log::warn!("cannot renew the leader lease ({e}); retrying");
                        Role::Active
                    }
                    Some(Role::Active) => {
                        log::error!(
                            "cannot renew the leader lease ({e}) for two thirds of it: \
                             standing by"
                        );
                        Role::Standby
                    }
                    _ => {
                        log::warn!("cannot read the leader lease ({e}); standing by");
                        Role::Standby
                    }
                }
            }
        };
        let (command, started) = (self.settings.command.clone(), self.settings.started_at);
        if let Ok(c) = self.conn() {
            if let Err(e) = instances::heartbeat(c, &instance, &key, &command, role, started, now) {
                log::debug!("instance heartbeat: {e}");
            }
        }
        role
    }

    fn period(&self) -> Duration {
        match self.role {
            Some(Role::Active) => self.settings.lease_for / 3,
            _ => (self.settings.lease_for / 6).max(Duration::from_millis(250)),
        }
    }

    fn stop(&mut self) {
        let (key, instance, token) = (
            self.settings.client_key.clone(),
            self.settings.instance.clone(),
            self.token.clone(),
        );
        let active = self.role == Some(Role::Active);
        let Ok(c) = self.conn() else { return };
        if active {
            match instances::release_leader(c, &key, &token, Utc::now()) {
                Ok(true) => log::info!("gave the leader lease up"),
                Ok(false) => {}
                Err(e) => log::warn!("cannot give the leader lease up ({e}); it expires"),
            }
        }
        let _ = instances::forget_instance(c, &instance);
    }
}

fn keep(
    settings: LeaderSettings,
    role_tx: tokio::sync::watch::Sender<Option<Role>>,
    stop: mpsc::Receiver<()>,
) {
    let mut k = Keeper {
        settings,
        token: new_lease_token(),
        conn: None,
        role: None,
        last_held: None,
    };
    loop {
        let role = k.poll();
        if k.role != Some(role) {
            k.role = Some(role);
            role_tx.send_replace(Some(role));
        }
        match stop.recv_timeout(k.period()) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    k.stop();
}
