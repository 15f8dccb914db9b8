//! The deadline of the work in progress (a tenant request, a script's host calls): statements on
//! tenant data are interrupted when it passes, so a client's heavy query never outlives its request.
//! Set with [`scope`] around the work; storage reads it where a statement starts.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// How long a statement may run when no deadline is set (CLI commands, migrations' helpers).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(120);

/// Runs `f` with `deadline` as the deadline of every statement it starts.
pub async fn scope<F: Future>(deadline: Instant, f: F) -> F::Output {
    DEADLINE.scope(deadline, f).await
}

/// The current deadline, or [`DEFAULT_BUDGET`] from now.
pub fn current() -> Instant {
    DEADLINE.try_with(|d| *d).unwrap_or_else(|_| Instant::now() + DEFAULT_BUDGET)
}
