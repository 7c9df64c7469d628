//! Small helpers for the locks the proxy holds.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex that is only held for plain, non-panicking updates.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
