//! The Coordinator beside other instances of the same OAuth client: what it does when it gains
//! or loses the leader lease ([`SetRole`]), how an active service adopts partitions others
//! planned, and how a standby backfill hands its range over and follows it to the end.
//! Guarantees are the Coordinator's (see its module doc); the plain decisions stay in
//! [`Schedule`](crate::actors::schedule::Schedule) and [`range_summary`].

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::*;

impl Coordinator {
    /// Every third of the lease: an active service adopts partitions others planned; a
    /// standby backfill hands its range over once, then checks whether it is finished.
    pub(super) fn poll_instances(&mut self, ctx: &mut Context<Self>) {
        if self.polling
            || self.pending_ops > 0
            || matches!(
                self.phase,
                Phase::Planning | Phase::ShuttingDown | Phase::Finished
            )
        {
            return;
        }
        match (self.role, self.settings.kind) {
            (Role::Active, RunKind::Service { .. }) => self.adopt_waiting(ctx),
            (Role::Standby, RunKind::Backfill { from, to }) => self.follow(ctx, from, to),
            _ => {}
        }
    }

    fn adopt_waiting(&mut self, ctx: &mut Context<Self>) {
        self.polling = true;
        // Every dataset: a backfill beside the service may ask for one the service does not.
        let msg = WaitingPartitions {
            datasets: vec![Dataset::Conversations, Dataset::Users],
        };
        ctx.spawn(self.writer.send(msg).into_actor(self).map(|res, act, ctx| {
            act.polling = false;
            let rows = match res {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => return log::warn!("cannot read waiting partitions: {e}"),
                Err(e) => return act.fatal = Some(format!("writer stopped: {e}")),
            };
            let wm = act.watermark(act.clock.now());
            let mut adopted = 0u64;
            for r in rows {
                if act.schedule.is_known(r.id) {
                    continue;
                }
                adopted += 1;
                let availability = act.fetch.availability_for(r.dataset);
                let path = choose_path(r.range(), act.settings.mode, availability);
                let is_final = r.range_end <= wm;
                act.schedule.enqueue(Work::of_partition(
                    &r,
                    path,
                    is_final,
                    WorkPriority::Backfill,
                ));
            }
            if adopted > 0 {
                log::info!("fetching {adopted} partitions planned by other instances");
                act.progress.add_total(adopted);
                if act.phase == Phase::CatchUp {
                    act.phase = Phase::Backfill;
                }
                act.dispatch(ctx);
            }
        }));
    }

    /// A standby backfill: ends once no partition of its range is pending or running, with
    /// the summary of the range as the checkpoint holds it.
    fn follow(&mut self, ctx: &mut Context<Self>, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.polling = true;
        let writer = self.writer.clone();
        let datasets = self.settings.datasets.clone();
        let hand_over = !self.handed_over;
        let end = to.min(self.watermark(self.clock.now())).max(from);
        let fut = async move {
            if hand_over {
                let n = ask(
                    &writer,
                    HandOverRange {
                        datasets: datasets.clone(),
                        from,
                        to: end,
                    },
                )
                .await?
                .map_err(|e| e.to_string())?;
                if n > 0 {
                    log::info!("handed {n} unverified or failed partitions to the active instance");
                }
            }
            ask(
                &writer,
                LoadPartitions {
                    datasets,
                    from,
                    to: end,
                },
            )
            .await?
            .map_err(|e| e.to_string())
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.polling = false;
            let rows = match res {
                Ok(rows) => rows,
                Err(e) => return log::warn!("cannot follow the range's progress: {e}"),
            };
            act.handed_over = true;
            if act.role != Role::Standby || act.phase != Phase::Standby {
                return;
            }
            let Some(summary) = range_summary(&rows) else {
                return;
            };
            log::info!(
                "every partition of the range is finished (by the active instance): {} done",
                summary.done
            );
            act.schedule.drain();
            act.schedule.summary = summary;
            act.finish(ctx, false);
        }));
    }
}

impl Handler<SetRole> for Coordinator {
    type Result = ();

    fn handle(&mut self, SetRole(role): SetRole, ctx: &mut Context<Self>) {
        if role == self.role || matches!(self.phase, Phase::ShuttingDown | Phase::Finished) {
            self.role = role;
            return;
        }
        self.role = role;
        match role {
            Role::Active => {
                log::info!("holding the leader lease: fetching");
                if matches!(self.phase, Phase::Standby) {
                    self.phase = if self.rounds == 0 {
                        Phase::Planning
                    } else {
                        Phase::Backfill
                    };
                }
                // Re-plan: partitions the old leader split or left behind are picked up.
                let priority = if self.rounds == 0 {
                    WorkPriority::Backfill
                } else {
                    WorkPriority::CatchUp
                };
                self.round(ctx, priority);
            }
            Role::Standby => {
                log::warn!(
                    "lost the leader lease: standing by (giving back {} partitions in flight)",
                    self.schedule.running_count()
                );
                if self.phase != Phase::Planning {
                    self.phase = Phase::Standby;
                }
                for (idx, _) in self.leases.values() {
                    self.fetchers[*idx].do_send(CancelFetch);
                }
            }
        }
        self.publish_status();
    }
}
