//! Group commit for the GitHub inbox: deliveries that arrive together are stored in one
//! transaction by a single writer task, and each is acknowledged once that commit is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock::Clock;
use tokio::sync::{mpsc, oneshot};

use crate::store::Store;
use crate::store::inbox::NewDelivery;

/// At most this many deliveries share one commit.
const GROUP: usize = 256;

type Reply = oneshot::Sender<Result<bool, String>>;

/// Hands deliveries to the inbox writer.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<(NewDelivery, Reply)>,
    /// Deliveries handed over and not yet acknowledged.
    waiting: Arc<AtomicUsize>,
}

impl InboxWriter {
    /// Starts the writer on `store` (the inbox store). It runs until every `InboxWriter` is
    /// dropped.
    pub fn start(store: Store, clock: Arc<dyn Clock>) -> InboxWriter {
        let (tx, mut rx) = mpsc::channel::<(NewDelivery, Reply)>(4 * GROUP);
        tokio::spawn(async move {
            let mut group = Vec::with_capacity(GROUP);
            while rx.recv_many(&mut group, GROUP).await > 0 {
                let (deliveries, replies): (Vec<_>, Vec<_>) = group.drain(..).unzip();
                match store.insert_deliveries(&deliveries, clock.now()).await {
                    Ok(fresh) => {
                        for (reply, new) in replies.into_iter().zip(fresh) {
                            let _ = reply.send(Ok(new));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, count = deliveries.len(), "could not store GitHub deliveries");
                        for reply in replies {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        InboxWriter {
            tx,
            waiting: Arc::default(),
        }
    }

    /// How many deliveries wait for their acknowledgement right now (the processor leaves
    /// the CPU to acknowledgements while many do).
    pub fn acks_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Stores a delivery; `Ok(true)` when it is new, `Ok(false)` for a redelivery. Returns
    /// only once the delivery is committed.
    pub async fn accept(&self, delivery: NewDelivery) -> Result<bool, String> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((delivery, reply))
            .await
            .map_err(|_| "the inbox writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the inbox writer has stopped".to_string())?
    }
}
