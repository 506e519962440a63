//! Pages to the Writer under the partition's lease token, with at most
//! `max_outstanding_pages` waiting for an acknowledgement (memory stays bounded however large
//! the block). The Writer acknowledges a page once it is buffered (or committed, when it
//! fills a batch); the completion goes only after every page of the block was acknowledged
//! OK, and its own answer comes after its commit: `Ok` only if every page of the lease was
//! written, else the reason one was not (lease lost, a permanent error, or "fetch again").
//! A page read under the shared [`RecordBudget`](super::budget::RecordBudget) keeps its share
//! until the Writer answered it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::budget::Held;
use super::{FetchContext, Stop};
use crate::actors::work::Work;
use crate::actors::writer::{
    ConversationRecord, PageRecords, PartitionCompletion, WritePage, Writer,
};
use crate::genesys::model::ReceivedConversation;
use crate::storage::checkpoint::Dataset;
use crate::storage::StorageError;
use crate::verify::Tally;

/// Whether the conversations received are final: ended before the watermark.
#[derive(Debug)]
pub struct Finality {
    watermark: DateTime<Utc>,
    /// Every conversation received so far had ended (a partition is final only then).
    all_ended: bool,
}

impl Finality {
    /// Marks one conversation final or not.
    pub fn mark(&mut self, c: ReceivedConversation) -> ConversationRecord {
        let done = c
            .conversation
            .conversation_end
            .is_some_and(|e| e <= self.watermark);
        self.all_ended &= done;
        ConversationRecord {
            received: c,
            is_final: done,
        }
    }
}

type Reply = Result<Result<(), StorageError>, actix::MailboxError>;

/// The Writer's answer to one page. A page holding a share of the record budget waits for it
/// in a task of its own, so the share goes back when the Writer answers, not when this Fetcher
/// next looks (it may be waiting for the budget itself).
enum Ack {
    Plain(Box<actix::dev::Request<Writer, WritePage>>),
    Held(tokio::task::JoinHandle<Reply>),
}

/// The pages of one partition on their way to the Writer.
pub struct Sink<'a> {
    ctx: &'a FetchContext,
    work: &'a Work,
    lease: &'a str,
    pending: VecDeque<Ack>,
    pub finality: Finality,
}

impl<'a> Sink<'a> {
    pub fn new(ctx: &'a FetchContext, work: &'a Work, lease: &'a str) -> Self {
        Sink {
            ctx,
            work,
            lease,
            pending: VecDeque::new(),
            finality: Finality {
                watermark: work.watermark.unwrap_or(work.range.end),
                all_ended: true,
            },
        }
    }

    /// Sends a page of `records` records (nothing when empty).
    pub async fn write(
        &mut self,
        page: PageRecords,
        records: usize,
        held: Option<Held>,
    ) -> Result<(), Stop> {
        if records == 0 {
            return Ok(());
        }
        let n = records as i64;
        self.ctx.counters.records.fetch_add(n, Ordering::Relaxed);
        if let (Some(p), Dataset::Conversations) = (&self.ctx.progress, self.work.dataset) {
            p.add_conversations(records as u64);
        }
        self.send(page, None, held).await
    }

    async fn send(
        &mut self,
        page: PageRecords,
        completion: Option<PartitionCompletion>,
        held: Option<Held>,
    ) -> Result<(), Stop> {
        let req = self.ctx.writer.send(WritePage {
            partition_id: self.work.id,
            lease_token: self.lease.to_owned(),
            page,
            completion,
        });
        self.pending.push_back(match held {
            None => Ack::Plain(Box::new(req)),
            Some(held) => Ack::Held(actix::spawn(async move {
                let reply = req.await;
                drop(held);
                reply
            })),
        });
        while self.pending.len() > self.ctx.settings.max_outstanding_pages.max(1) {
            self.wait_one().await?;
        }
        Ok(())
    }

    async fn wait_one(&mut self) -> Result<(), Stop> {
        if let Some(ack) = self.pending.pop_front() {
            let reply = match ack {
                Ack::Plain(req) => (*req).await,
                Ack::Held(task) => task.await.unwrap_or(Err(actix::MailboxError::Closed)),
            };
            match reply {
                Ok(Ok(())) => {}
                Ok(Err(StorageError::LeaseLost { .. })) => return Err(Stop::LeaseLost),
                Ok(Err(e)) => {
                    let transient = e.is_transient();
                    return Err(Stop::Write(e.to_string(), transient));
                }
                Err(e) => return Err(Stop::Write(format!("writer unavailable: {e}"), true)),
            }
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), Stop> {
        while !self.pending.is_empty() {
            self.wait_one().await?;
        }
        Ok(())
    }

    /// Waits for every page to be acknowledged, then commits the completion.
    pub async fn complete(&mut self, t: Tally) -> Result<(), Stop> {
        self.drain().await?;
        let empty = match self.work.dataset {
            Dataset::Conversations => PageRecords::Conversations(Vec::new()),
            Dataset::Users => PageRecords::Users(Vec::new()),
        };
        let completion = PartitionCompletion {
            total_hits: t.total_hits,
            received: t.received,
            verified: t.verified,
            // A conversation not final yet keeps its partition open for catch-up.
            is_final: self.work.is_final && self.finality.all_ended,
            settled: crate::settle::settled_at(
                self.work.range.end,
                self.ctx.clock.now(),
                self.ctx.settle_after,
            ),
        };
        self.send(empty, Some(completion), None).await?;
        self.drain().await
    }
}

impl Sink<'_> {
    /// Takes a page's records: each key is counted once for verification; the records to
    /// write (the new ones, or every one for a dataset that writes repeats) go to the Writer.
    pub async fn take<D: super::Dataset>(
        &mut self,
        seen: &mut crate::verify::Verification,
        records: Vec<D::Record>,
    ) -> Result<(), Stop> {
        self.take_held::<D>(seen, records, None).await
    }

    /// [`take`](Self::take) for a page read under the record budget: the page keeps the
    /// share of its records written until the Writer answered it.
    pub async fn take_held<D: super::Dataset>(
        &mut self,
        seen: &mut crate::verify::Verification,
        records: Vec<D::Record>,
        mut held: Option<Held>,
    ) -> Result<(), Stop> {
        let records: Vec<D::Record> = if D::WRITE_REPEATS {
            for r in &records {
                seen.accept(D::key(r));
            }
            records
        } else {
            records
                .into_iter()
                .filter(|r| seen.accept(D::key(r)))
                .collect()
        };
        let n = records.len();
        if let Some(h) = held.as_mut() {
            h.keep(n);
        }
        let page = D::into_page(records, &mut self.finality);
        self.write(page, n, held).await
    }
}
