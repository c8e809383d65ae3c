//! Change notices for outposts. After a write that may change a forward-auth answer (a
//! provider or binding edited, a session revoked, a user deactivated, a sign-out), every
//! outpost of this server forgets what it cached: the embedded one at once, standalone ones
//! through their event stream (`outposts/proxy/events/`). Outposts still re-read anything older
//! than a second, so a notice lost in transit delays a change by at most that.

use tokio::sync::{broadcast, watch};

/// The notice channel of one server process.
pub struct Changes {
    /// One message per change; receivers that lag simply treat it as "something changed".
    tx: broadcast::Sender<()>,
    /// Set at shutdown, so open event streams end and the server can stop.
    closed: watch::Sender<bool>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            tx: broadcast::channel(64).0,
            closed: watch::channel(false).0,
        }
    }
}

impl Changes {
    /// Tells every subscribed outpost that something changed.
    pub fn publish(&self) {
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
