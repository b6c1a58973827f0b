//! Several sync nodes on one shared engine (Postgres): each node's object for a store holds a
//! cached head and backendId, and other nodes move them. The storage is the authority
//! ([`EventLog::shared`]); a node reads it again when a push of its own is judged stale, and when
//! the engine reports that another node wrote ([`Core::catch_up`]), and delivers what it finds
//! to its own live pulls in order, once.

use std::rc::Rc;

use super::admin::RESET_CLOSE_CODE;
use super::{Core, Error, Host, Pager};
use crate::hooks::{RequestContext, SyncHooks};
use crate::protocol::Transport;
use crate::storage::{EventLog, StoreMeta};

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// Another node wrote to this object's store (the engine's notification): its new events
    /// reach this node's live pulls, or, after a reset there, this node's sockets are closed as
    /// a local reset closes them. Nothing happens when no store is open yet: a store is read
    /// from storage when it opens. `announced` is the head the writer announced, when it said:
    /// one this node already holds (its own push, echoed) costs no read.
    pub async fn catch_up(&self, announced: Option<i64>) -> Result<(), Error> {
        let held = |head: i64| self.store.borrow().as_ref().is_some_and(|open| open.meta.head >= head);
        if announced.is_some_and(held) {
            return Ok(());
        }
        let _turn = self.turns.ticket().await;
        let Some((store_id, meta, log)) = self
            .store
            .borrow()
            .as_ref()
            .map(|open| (open.store_id.clone(), open.meta.clone(), open.log.clone()))
        else {
            return Ok(());
        };
        self.catch_up_open(&store_id, &log, meta).await.map(|_| ())
    }

    /// Reads the store's stored state, delivers the events stored after `meta.head` to the live
    /// pulls, and returns the state now cached. Runs in the push lock (the caller holds a turn),
    /// so deliveries keep the log's order.
    pub(super) async fn catch_up_open(&self, store_id: &str, log: &Rc<L>, meta: StoreMeta) -> Result<StoreMeta, Error> {
        let result = self.read_and_deliver(store_id, log, meta).await;
        self.forget_store_on_storage_error(&result);
        result
    }

    async fn read_and_deliver(&self, store_id: &str, log: &Rc<L>, mut meta: StoreMeta) -> Result<StoreMeta, Error> {
        let Some(stored) = log.load_context().await? else {
            return Ok(meta);
        };
        if stored.backend_id != meta.backend_id {
            // Reset on another node: as after a local reset, the sockets go (their clients
            // reconnect and are told to reset) and the store is read afresh.
            self.host.close_sockets(RESET_CLOSE_CODE, "store reset");
            self.forget_sockets();
            self.live.changes.notify();
            let fresh = StoreMeta {
                backend_id: stored.backend_id,
                head: stored.current_head,
            };
            self.set_meta(&fresh);
            return Ok(fresh);
        }
        // No client request carries these events here; the hook sees them as the admin API's.
        let ctx = RequestContext {
            store_id,
            transport: Transport::Http,
            payload: None,
            headers: &[],
        };
        let limits = self.limits();
        while meta.head < stored.current_head {
            let items = log.read_after(Some(meta.head), limits.read_batch).await?;
            let Some(last) = items.last().map(|item| item.seq_num) else {
                break;
            };
            self.deliver(log, &ctx, || {
                let mut pager = Pager::broadcast(&meta.backend_id, limits);
                let mut pages: Vec<String> = items.iter().filter_map(|item| pager.add(&item.json)).collect();
                pages.extend(pager.finish());
                pages
            })
            .await;
            meta.head = last;
            self.set_meta(&meta);
        }
        Ok(meta)
    }
}
