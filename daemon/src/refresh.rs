//! The refresher: a background task that sleeps until the next slot is due (its jittered
//! refresh point, or the end of a back-off) and refreshes it, so tokens in use never reach
//! the point where a caller has to wait for AWS. Anything that changes a schedule wakes it.

use crate::tokens::TokenStore;
use ecr_cred::token::now_unix;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between looks, so a clock jump is noticed within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub async fn run(store: Arc<TokenStore>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = now_unix();
        let mut next: Option<f64> = None;
        for slot in store.slots() {
            match TokenStore::next_due(&slot, now) {
                Some(due) if due <= now as f64 => {
                    slot.state.lock().unwrap().refreshing = true;
                    let (store, slot) = (store.clone(), slot.clone());
                    tokio::spawn(async move { store.refresh(&slot).await });
                }
                Some(due) => next = Some(next.map_or(due, |n: f64| n.min(due))),
                None => {}
            }
        }
        let wait = next.map(|due| Duration::from_secs_f64((due - now_unix() as f64).max(0.05))).unwrap_or(MAX_SLEEP).min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = store.wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}
