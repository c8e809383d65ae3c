//! Change notices for outposts. After a write that may change a forward-auth answer (a
//! provider or binding edited, a session revoked, a user deactivated, a sign-out), every
//! outpost forgets what it cached: the embedded one at once, standalone ones through their
//! event stream (`outposts/proxy/events/`), and on PostgreSQL the other replicas too, through
//! `LISTEN/NOTIFY` ([`follow_replicas`]). Outposts still re-read anything older than a second,
//! so a notice lost in transit delays a change by at most that.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::Store;
use tokio::sync::{broadcast, watch};

/// The notice channel of one server process.
pub struct Changes {
    /// One message per change; receivers that lag simply treat it as "something changed".
    tx: broadcast::Sender<()>,
    /// Set at shutdown, so open event streams end and the server can stop.
    closed: watch::Sender<bool>,
    /// For telling the other replicas.
    store: Store,
    /// This process, as named in its notices to the other replicas (it ignores its own).
    origin: String,
}

impl Changes {
    /// The notices of a process using `store`.
    pub fn new(store: Store) -> Changes {
        Changes {
            tx: broadcast::channel(64).0,
            closed: watch::channel(false).0,
            store,
            origin: gatehouse_core::secret::new_token(),
        }
    }

    /// Tells every outpost of this process, and the other replicas, that something changed.
    pub fn publish(&self) {
        self.relay();
        let (store, origin) = (self.store.clone(), self.origin.clone());
        tokio::spawn(async move {
            if let Err(e) = store.notify_change(&origin).await {
                tracing::warn!(error = %e, "could not tell the other replicas about a change; they see it within a second");
            }
        });
    }

    /// Tells this process's standalone outposts (a notice from another replica).
    fn relay(&self) {
        let _ = self.tx.send(());
    }

    /// A receiver of the notices published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.tx.subscribe()
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
}

/// Listens for the other replicas' notices (PostgreSQL; returns at once on SQLite) and passes
/// each on to `outpost` and this process's event streams. A dropped listener connection
/// counts as a notice (some may have been missed) and is made again, every few seconds while
/// the database is away.
pub async fn follow_replicas(changes: Arc<Changes>, outpost: Arc<gatehouse_outpost::Outpost>) {
    let forget = || {
        outpost.invalidate();
        changes.relay();
    };
    loop {
        match changes.store.listen_changes().await {
            Ok(None) => return,
            Ok(Some(mut listener)) => loop {
                match listener.next().await {
                    Ok(Some(origin)) if origin == changes.origin => {}
                    Ok(_) => forget(),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the change notices of the other replicas; reconnecting");
                        forget();
                        break;
                    }
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for the other replicas' changes yet")
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
