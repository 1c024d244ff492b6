//! The refresher: a background task that sleeps until the next slot is due (its jittered
//! refresh point, or the end of a back-off) and refreshes it, so tokens in use never reach
//! the point where a caller has to wait for upstream. Anything that changes a schedule wakes
//! it. It needs only the store (no socket), and reads time from the store's clock.

use crate::store::TokenStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Shortest sleep, so a slot due "now" that cannot start yet is not spun on.
const MIN_SLEEP: Duration = Duration::from_millis(50);

/// Refresh due slots until `shutdown` completes.
pub async fn run(store: Arc<TokenStore>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let next = store.start_due_refreshes();
        let longest = store.clock().longest_sleep();
        let wait =
            next.map(|due| Duration::from_secs_f64((due - store.clock().now()).max(0.0)).max(MIN_SLEEP)).unwrap_or(longest).min(longest);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = store.schedule_changed() => {}
            _ = &mut shutdown => return,
        }
    }
}
