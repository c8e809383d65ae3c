//! This process's reader of the change feed ([`gatehouse_store::changes`]). The store appends
//! a change in the same transaction as every write that can change a forward-auth answer;
//! [`follow`] reads them in order and hands each to the embedded outpost (which drops exactly
//! what it names) and to the event streams of standalone outposts (`outposts/proxy/events/`).
//!
//! Cues, never a timer on the hot path: after each commit of this process, and on PostgreSQL
//! the `NOTIFY` carrying the sequence number that every replica's commit sends. The feed is
//! also looked at every [`LOOK`] (one indexed read, whatever the number of sessions): on
//! SQLite another process may share the file (a second server replica, the CLI writing
//! directly), which no notice reaches; on PostgreSQL a notice can be lost without a trace (a
//! pooler in between); and each look that succeeds is the feed's confirmed contact, which
//! spares cached answers the outpost's safety bound. A dropped `LISTEN` connection puts the
//! embedded outpost in degraded mode (cached answers stand for the grace period); once back,
//! the reader resumes from its position, or drops everything when the feed no longer covers it.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_outpost::Outpost;
use gatehouse_proto::outposts::FeedChange;
use gatehouse_store::changes::{self, Change};
use gatehouse_store::Store;
use tokio::sync::{broadcast, watch};

/// How often the feed is looked at without a cue: for writes no notice announced, and as the
/// feed's confirmed contact (far inside any sensible safety bound).
pub const LOOK: Duration = Duration::from_millis(250);

/// How long the feed reader waits before trying the database again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Changes read per query; more are read at once after a full batch.
const BATCH: i64 = 1_000;

/// The change feed as this process follows it.
pub struct Changes {
    /// Every change read, in order, for the event streams.
    tx: broadcast::Sender<FeedChange>,
    /// The position of the last change read (0 before the first read).
    position: watch::Sender<i64>,
    /// Set at shutdown, so open event streams end and the server can stop.
    closed: watch::Sender<bool>,
    /// Where the feed is.
    store: Store,
}

/// The wire form of a feed entry.
pub fn wire(change: &Change) -> FeedChange {
    let (kind, subject) = change.kind.parts();
    FeedChange {
        seq: change.seq,
        kind: kind.to_owned(),
        subject,
    }
}

impl Changes {
    /// The feed of a process using `store`.
    pub fn new(store: Store) -> Changes {
        Changes {
            tx: broadcast::channel(4096).0,
            position: watch::channel(0).0,
            closed: watch::channel(false).0,
            store,
        }
    }

    /// A receiver of the changes read from now on, and the position it starts after: the
    /// event streams replay from the database up to that position, then follow the receiver.
    pub fn subscribe(&self) -> (broadcast::Receiver<FeedChange>, i64) {
        let rx = self.tx.subscribe();
        (rx, *self.position.borrow())
    }

    /// Ends every event stream (at shutdown).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`Changes::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    /// Reads every change after the current position and hands each on. When the feed no
    /// longer covers the position, `outpost` drops everything and the streams get an `all`.
    async fn read(&self, outpost: &Outpost) -> gatehouse_store::Result<()> {
        let mut conn = self.store.conn().await?;
        loop {
            let at = *self.position.borrow();
            let Some(batch) = changes::since(&mut conn, at, BATCH).await? else {
                let latest = changes::latest(&mut conn).await?;
                tracing::warn!(
                    position = at,
                    latest,
                    "the change feed no longer covers this process's position: dropping every cached answer"
                );
                outpost.drop_all();
                let reset = FeedChange {
                    seq: latest,
                    kind: "all".into(),
                    subject: 0,
                };
                outpost.feed_at(latest, false);
                self.position.send_replace(latest);
                let _ = self.tx.send(reset);
                self.store.feed_read(latest);
                return Ok(());
            };
            let full = batch.len() as i64 == BATCH;
            for change in &batch {
                let change = wire(change);
                outpost.apply(&change);
                self.position.send_replace(change.seq);
                let _ = self.tx.send(change);
            }
            if !full {
                self.store.feed_read(*self.position.borrow());
                return Ok(());
            }
        }
    }
}

/// Follows the change feed for `outpost` and this process's event streams, until the process
/// ends. Starts at the feed's current end: nothing is cached yet.
pub async fn follow(changes: Arc<Changes>, outpost: Arc<Outpost>) {
    loop {
        match changes.store.conn().await {
            Ok(mut conn) => match changes::latest(&mut conn).await {
                Ok(latest) => {
                    changes.position.send_replace(latest);
                    outpost.feed_at(latest, false);
                    changes.store.feed_read(latest);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the change feed's position yet"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot read the change feed's position yet"),
        }
        tokio::time::sleep(RETRY).await;
    }
    let read = |outcome: gatehouse_store::Result<()>| match outcome {
        Ok(()) => outpost.feed_live(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the change feed; cached answers stand for the grace period");
            outpost.feed_lost(gatehouse_outpost::Error::Unreachable(e.to_string()));
        }
    };
    // When the LISTEN connection last dropped: a drop (a restarted database) is listened to
    // again at once, so changes made meanwhile are read without delay; drops that keep coming
    // are retried once a second.
    let mut last_drop: Option<std::time::Instant> = None;
    loop {
        let mut again_at_once = false;
        match changes.store.listen_changes().await {
            Ok(None) => loop {
                tokio::select! {
                    _ = changes.store.committed() => {}
                    _ = tokio::time::sleep(LOOK) => {}
                }
                read(changes.read(&outpost).await);
            },
            Ok(Some(mut listener)) => {
                // Whatever was committed while not listening.
                read(changes.read(&outpost).await);
                loop {
                    let cue = tokio::select! {
                        n = listener.next() => n,
                        _ = changes.store.committed() => Ok(Some(0)),
                        _ = tokio::time::sleep(LOOK) => Ok(Some(0)),
                    };
                    match cue {
                        Ok(Some(_)) => read(changes.read(&outpost).await),
                        // The connection dropped: listen afresh, then read what was missed.
                        Ok(None) => {
                            tracing::warn!("lost the change notices (LISTEN); reconnecting");
                            outpost.feed_lost(gatehouse_outpost::Error::Unreachable(
                                "the LISTEN connection dropped".into(),
                            ));
                            again_at_once = last_drop.is_none_or(|t| t.elapsed() > 5 * RETRY);
                            last_drop = Some(std::time::Instant::now());
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for change notices; retrying");
                            outpost.feed_lost(gatehouse_outpost::Error::Unreachable(e.to_string()));
                            again_at_once = last_drop.is_none_or(|t| t.elapsed() > 5 * RETRY);
                            last_drop = Some(std::time::Instant::now());
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                outpost.feed_lost(gatehouse_outpost::Error::Unreachable(e.to_string()));
                tracing::debug!(error = %e, "cannot listen for change notices yet");
            }
        }
        if !again_at_once {
            tokio::time::sleep(RETRY).await;
        }
    }
}
