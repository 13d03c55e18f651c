//! Connection slots for recorderd's servers (the control socket and the
//! metrics endpoint): at most `max` connections at once, and a new one
//! always gets in while some are idle (waiting for a request), by closing
//! the oldest idle one. So clients that connect and send nothing cannot
//! lock out the others, however many they open.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::Notify;

/// One connection's shared state.
#[derive(Debug, Default)]
struct Conn {
    /// Serving a request (not evictable).
    busy: AtomicBool,
    /// Notified when the connection was evicted.
    evicted: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// Live connections by age (the oldest first).
    conns: BTreeMap<u64, Arc<Conn>>,
}

/// The slots of one server.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    inner: Mutex<Inner>,
    /// Notified when a slot is freed.
    freed: Notify,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            inner: Mutex::default(),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Poisoned only by a panic elsewhere; the map stays consistent
        // (every change is a single insert or remove).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many connections hold a slot.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A slot for a new connection, idle until [`Slot::busy`]. When all
    /// are taken, the oldest idle connection is evicted (its
    /// [`Slot::evicted`] resolves); when none is idle, `None`.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.lock();
        if inner.conns.len() >= self.max {
            let oldest_idle = inner
                .conns
                .iter()
                .find(|(_, c)| !c.busy.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            if let Some(c) = inner.conns.remove(&oldest_idle) {
                c.evicted.notify_one();
            }
        }
        let id = inner.next;
        inner.next += 1;
        let conn = Arc::new(Conn::default());
        inner.conns.insert(id, conn.clone());
        Some(Slot {
            slots: self.clone(),
            id,
            conn,
        })
    }

    /// A slot for a new connection, waiting while every slot is busy.
    pub async fn take(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }
}

/// A connection's slot, freed when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    conn: Arc<Conn>,
}

impl Slot {
    /// Marks the connection as serving a request: it is not evicted.
    pub fn busy(&self) {
        self.conn.busy.store(true, Ordering::Release);
    }

    /// Marks the connection as waiting for a request again.
    pub fn idle(&self) {
        self.conn.busy.store(false, Ordering::Release);
    }

    /// Resolves once the connection was evicted to make room.
    pub async fn evicted(&self) {
        self.conn.evicted.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().conns.remove(&self.id);
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room() {
        let slots = Slots::new(3);
        let a = slots.try_take().unwrap();
        let b = slots.try_take().unwrap();
        let c = slots.try_take().unwrap();
        a.busy();
        // Full: b, the oldest idle one, goes.
        let d = slots.try_take().unwrap();
        assert_eq!(slots.len(), 3);
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .unwrap();
        // Dropping an evicted slot frees nothing more.
        drop(b);
        assert_eq!(slots.len(), 3);
        c.busy();
        d.busy();
        assert!(slots.try_take().is_none(), "all busy");
        d.idle();
        let _e = slots.try_take().unwrap();
        tokio::time::timeout(Duration::from_secs(1), d.evicted())
            .await
            .unwrap();
        drop(a);
        assert_eq!(slots.len(), 2);
    }

    #[tokio::test]
    async fn take_waits_for_a_freed_slot() {
        let slots = Slots::new(1);
        let a = slots.try_take().unwrap();
        a.busy();
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await.id }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(a);
        let id = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, 1);
    }
}
