//! Connection admission: a cap on open connections, all callers together and per uid, so one
//! uid can never hold the connections another needs. Every accepted connection holds a
//! [`Permit`] for its whole life; dropping it frees the place.
//!
//! - Root and the broker's own uid count only against the total.
//! - Any other uid holds at most `max_connections_per_uid`, and all of them together at most
//!   `max_connections` minus a reserve (one per-uid share) kept for root and the broker's uid.
//! - A uid that may use no identity holds at most [`REFUSED_SHARE`]: its connections are
//!   answered once and closed anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections a uid with no usable identity may hold at once.
pub const REFUSED_SHARE: usize = 4;

/// The limits in force (from the configuration, clamped to what the fd limit allows).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_total: usize,
    pub max_per_uid: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

#[derive(Default)]
pub struct Admission {
    counts: Mutex<Counts>,
}

/// One open connection's place; freed on drop.
pub struct Permit {
    admission: Arc<Admission>,
    uid: u32,
}

impl Admission {
    /// A place for a connection from `uid`, or why not. `privileged`: root or our own uid;
    /// `usable`: the uid may use at least one identity.
    pub fn admit(self: &Arc<Self>, uid: u32, privileged: bool, usable: bool, limits: Limits) -> Result<Permit, &'static str> {
        let mut c = self.counts.lock().unwrap();
        let held = c.per_uid.get(&uid).copied().unwrap_or(0);
        if privileged {
            if c.total >= limits.max_total {
                return Err("the broker's connection limit is reached");
            }
        } else {
            let share = if usable { limits.max_per_uid } else { limits.max_per_uid.min(REFUSED_SHARE) };
            let reserve = limits.max_per_uid.min(limits.max_total / 2);
            if held >= share {
                return Err("this uid holds its share of connections");
            }
            if c.total >= limits.max_total - reserve {
                return Err("the broker's connection limit for other users is reached");
            }
        }
        c.total += 1;
        *c.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Permit { admission: self.clone(), uid })
    }

    /// Open connections now (all callers).
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.admission.counts.lock().unwrap();
        c.total -= 1;
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_total: 10, max_per_uid: 3 };

    #[test]
    fn one_uid_gets_its_share_and_others_and_root_still_get_in() {
        let a = Arc::new(Admission::default());
        let mine: Vec<Permit> = (0..3).map(|_| a.admit(1000, false, true, LIMITS).unwrap()).collect();
        assert!(a.admit(1000, false, true, LIMITS).is_err(), "past its share");
        let others: Vec<Permit> = (0..4).map(|i| a.admit(2000 + i, false, true, LIMITS).unwrap()).collect();
        assert!(a.admit(3000, false, true, LIMITS).is_err(), "the reserve is for root and our uid");
        let root: Vec<Permit> = (0..3).map(|_| a.admit(0, true, true, LIMITS).unwrap()).collect();
        assert!(a.admit(0, true, true, LIMITS).is_err(), "total reached");
        drop(mine);
        assert_eq!(a.open(), 7);
        assert!(a.admit(1000, false, true, LIMITS).is_err(), "root's places still count against the total for others");
        drop(root);
        assert!(a.admit(1000, false, true, LIMITS).is_ok(), "places come back when connections close");
        drop(others);
    }

    #[test]
    fn a_uid_with_no_usable_identity_holds_only_a_few() {
        let a = Arc::new(Admission::default());
        let limits = Limits { max_total: 100, max_per_uid: 50 };
        let held: Vec<Permit> = (0..REFUSED_SHARE).map(|_| a.admit(65534, false, false, limits).unwrap()).collect();
        assert!(a.admit(65534, false, false, limits).is_err());
        assert_eq!(held.len(), REFUSED_SHARE);
    }
}
