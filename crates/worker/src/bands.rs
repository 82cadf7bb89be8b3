//! Priority under backlog. apalis-redis ignores task priorities (a queue is one FIFO list) and
//! `BackendExt::interleave` across Redis queues acks to the wrong queue, so jobs go to one queue
//! per band (`Band::of(priority)`: 7–10 high, 4–6 normal, 0–3 low) and this process runs one
//! apalis consumer per band. All three share one `PriorityGate` of `WORKER_CONCURRENCY` slots:
//! a job runs only with a slot, and a freed slot goes to the highest band with a job waiting.
//! So a high-priority job submitted behind thousands of low ones waits only for the next slot.
//! Each band's consumer may hold up to `WORKER_CONCURRENCY` fetched jobs waiting for a slot.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use llmflow_core::queue::Band;

/// Slots shared by the band consumers, handed out highest band first.
pub struct PriorityGate {
    inner: Mutex<GateState>,
}

struct GateState {
    free: usize,
    /// Waiters per band rank (0 = high).
    waiting: [VecDeque<oneshot::Sender<()>>; 3],
}

/// A slot; dropping it passes the slot to the best waiter.
pub struct Slot {
    gate: Arc<PriorityGate>,
}

impl PriorityGate {
    pub fn new(slots: usize) -> Arc<PriorityGate> {
        Arc::new(PriorityGate {
            inner: Mutex::new(GateState {
                free: slots.max(1),
                waiting: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            }),
        })
    }

    /// Waits for a slot for a job of `band`.
    pub async fn acquire(self: &Arc<Self>, band: Band) -> Slot {
        let receiver = {
            let mut state = match self.inner.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            if state.free > 0 {
                state.free -= 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                state.waiting[band.rank()].push_back(tx);
                Some(rx)
            }
        };
        if let Some(rx) = receiver {
            // The sender is only dropped by a handed-over slot or the gate going away.
            let _ = rx.await;
        }
        Slot { gate: self.clone() }
    }

    fn release(&self) {
        let mut state = match self.inner.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        for rank in 0..state.waiting.len() {
            while let Some(waiter) = state.waiting[rank].pop_front() {
                if waiter.send(()).is_ok() {
                    return;
                }
            }
        }
        state.free += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_highest_band_waiting() {
        let gate = PriorityGate::new(1);
        let held = gate.acquire(Band::Low).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for band in [Band::Low, Band::Normal, Band::High] {
            let gate = gate.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _slot = gate.acquire(band).await;
                order.lock().expect("lock").push(band);
            }));
            tokio::task::yield_now().await;
        }
        // Let every waiter queue up before the slot is freed.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            *order.lock().expect("lock"),
            [Band::High, Band::Normal, Band::Low]
        );
    }
}
