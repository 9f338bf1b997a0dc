//! Test-only fault injection, for the integration tests (which run the real
//! binary and so cannot reach `cfg(test)` code).
//!
//! `STREAMLAKE_FAULTS=point:table[,point:table…]` arms each named point
//! once for that table; unset (always, outside tests), [`fire`] is one
//! environment lookup per call, made only on commit and rewrite paths.
//!
//! | point             | what happens                                              |
//! |-------------------|-----------------------------------------------------------|
//! | `lose-commit-ack` | the catalog swap takes effect but reports an error        |
//! | `rewrite-write`   | UPDATE/DELETE fail writing their files, after the key check |
//! | `view-panic`      | the view's operators panic at the first barrier with rows (the name is a view's) |

use std::collections::HashSet;
use std::sync::Mutex;

/// Whether the fault `point` is armed for `table` and has not fired yet;
/// marks it fired.
pub fn fire(point: &str, table: &str) -> bool {
    let Ok(spec) = std::env::var("STREAMLAKE_FAULTS") else {
        return false;
    };
    let wanted = format!("{point}:{table}");
    if !spec.split(',').any(|s| s.trim() == wanted) {
        return false;
    }
    static FIRED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut fired = FIRED.lock().expect("fault lock");
    fired.get_or_insert_with(HashSet::new).insert(wanted)
}

/// The error an injected fault returns.
pub fn error(point: &str) -> crate::error::Error {
    crate::error::Error::Io(std::io::Error::other(format!("injected fault: {point}")))
}
