//! Managed background work: every long-lived task of a server (the scheduler, the log writer, the
//! hourly pruner) and every unit of work that outlives its request (a job run) is started here, so
//! that shutdown can stop the loops, wait for the work within a bound, and release what is left.
//!
//! Shutdown (`roost serve` on SIGTERM or Ctrl-C, see [`crate::serve_with`]): the listeners stop
//! accepting and in-flight requests finish, then the loops are cancelled, then running job runs get
//! until `shutdown_grace_ms` (from the signal) to end; a run still going is recorded as failed, so no
//! run stays claimed. Finally the script log is flushed and its writer stops.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The outcome recorded for a job run the server stopped before it ended.
pub fn interrupted() -> roost_api::JobOutcome {
    roost_api::JobOutcome::failed("the server stopped before the run ended")
}

/// A claimed job run in progress: (tenant, job, due).
pub type Claim = (String, String, String);

/// The registry of a server's background work.
#[derive(Default)]
pub struct Tasks {
    /// Cancelled when the server stops: loops end at their next wait.
    stop: CancellationToken,
    /// The loops.
    loops: TaskTracker,
    /// Work that must finish (or be released) before the process exits.
    work: TaskTracker,
    /// Job runs claimed and not yet recorded.
    claims: Mutex<Vec<Claim>>,
    /// Cancelled last, once the work has ended: writers store what is queued, then end.
    last: CancellationToken,
    /// The writers (the script log).
    writers: TaskTracker,
}

/// How long the writers may take to store what is queued once everything else stopped.
const WRITERS_GRACE: Duration = Duration::from_secs(5);

impl Tasks {
    /// The token loops watch.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// True once shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Starts a named loop, which ends when the token it is given is cancelled.
    pub fn spawn_loop<F>(&self, name: &'static str, make: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fut = make(self.stop.clone());
        self.loops.spawn(async move {
            fut.await;
            tracing::debug!(task.name = name, "Background task stopped");
        });
    }

    /// Starts a writer, which stores what is queued and ends when its token is cancelled (after
    /// every loop and unit of work).
    pub fn spawn_writer<F>(&self, make: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.writers.spawn(make(self.last.clone()));
    }

    /// Starts a unit of work shutdown waits for (within its bound).
    pub fn spawn_work<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.work.spawn(fut)
    }

    /// Records a claimed job run as in progress; [`Tasks::release`] ends that.
    pub fn claim(&self, claim: Claim) {
        self.claims.lock().unwrap_or_else(|e| e.into_inner()).push(claim);
    }

    /// The run is recorded (or was never claimed here).
    pub fn release(&self, claim: &Claim) {
        self.claims.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c != claim);
    }

    /// Cancels the loops and waits for them and for the work, until `deadline`. Returns the claims
    /// of runs still in progress at the deadline (the caller records them as interrupted).
    pub async fn stop(&self, deadline: tokio::time::Instant) -> Vec<Claim> {
        self.stop.cancel();
        self.loops.close();
        self.work.close();
        let both = async {
            self.loops.wait().await;
            self.work.wait().await;
        };
        if tokio::time::timeout_at(deadline, both).await.is_err() {
            tracing::warn!(
                loops = self.loops.len(),
                work = self.work.len(),
                "Background work did not end within the shutdown grace period; stopping without it"
            );
        }
        std::mem::take(&mut *self.claims.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lets the writers store what is queued, and waits for them (bounded).
    pub async fn stop_writers(&self) {
        self.last.cancel();
        self.writers.close();
        if tokio::time::timeout(WRITERS_GRACE, self.writers.wait()).await.is_err() {
            tracing::warn!("The script log writer did not finish storing its queue in time");
        }
    }
}

/// Waits for `d` unless the token is cancelled first; returns false when cancelled.
pub async fn sleep_or_stop(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}
