//! Memory accounting of operator state.
//!
//! Every state table reports the bytes it holds to a [`Meter`]; a view's
//! meter adds up its operators' and passes each change on to the server's
//! total. Reading a meter is one atomic load, so the system table and a
//! memory limit can look at it at every barrier without walking any state.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
struct Node {
    bytes: AtomicI64,
    parent: Option<Arc<Node>>,
}

/// A counter of state bytes, linked to the counter it is part of.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    node: Arc<Node>,
}

impl Meter {
    /// A top-level meter (the server's total).
    pub fn root() -> Meter {
        Meter::default()
    }

    /// A meter whose changes also count in `self`.
    pub fn child(&self) -> Meter {
        Meter {
            node: Arc::new(Node {
                bytes: AtomicI64::new(0),
                parent: Some(self.node.clone()),
            }),
        }
    }

    /// Adds `delta` bytes (negative: released) here and in every meter
    /// above.
    pub fn add(&self, delta: i64) {
        if delta == 0 {
            return;
        }
        let mut node = Some(&self.node);
        while let Some(n) = node {
            n.bytes.fetch_add(delta, Ordering::Relaxed);
            node = n.parent.as_ref();
        }
    }

    /// The bytes counted here now.
    pub fn bytes(&self) -> i64 {
        self.node.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_reach_every_meter_above() {
        let total = Meter::root();
        let view = total.child();
        let (a, b) = (view.child(), view.child());
        a.add(100);
        b.add(50);
        a.add(-30);
        assert_eq!(
            (a.bytes(), b.bytes(), view.bytes(), total.bytes()),
            (70, 50, 120, 120)
        );
        drop(a);
        // A dropped meter's bytes stay counted until its owner gives them
        // back: a state table does so when it is dropped.
        assert_eq!(total.bytes(), 120);
    }
}
