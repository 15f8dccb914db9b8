//! Password hashing, the one home for it: platform accounts (the portal's sign-in) and tenant scripts
//! (`require('roost-auth').hashPassword` / `verifyPassword`). argon2id with the `argon2` crate's
//! defaults (OWASP's recommendation: 19 MiB, 2 passes, 1 lane), always on blocking threads.
//!
//! A tenant's hashes are bounded in Rust: at most one at a time per tenant, and at most as many at
//! once as the machine has cores for all tenants together (a tenant hashing in a loop delays other
//! tenants by one hash at most); the password and the stored hash have size limits; a stored hash is
//! tenant data, so one asking for more memory or passes than [`MAX_M_COST_KIB`] and [`MAX_T_COST`] is
//! refused before any work. The wait and the hash count against the script's wall-clock limit.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::Semaphore;

/// The longest password a script may hash or verify, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest PHC string `verifyPassword` reads.
pub const MAX_HASH_CHARS: usize = 256;
/// The most memory a verified hash may ask for (KiB): 64 MiB.
pub const MAX_M_COST_KIB: u32 = 64 * 1024;
/// The most passes a verified hash may ask for.
pub const MAX_T_COST: u32 = 4;
/// The most lanes a verified hash may ask for.
pub const MAX_P_COST: u32 = 4;

/// An argon2id PHC string of `password` (off the async workers: it takes tens of milliseconds).
pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_now(&password)).await.map_err(|e| e.to_string())?
}

/// Whether `password` matches the PHC string `hash` (false for a string that is not one).
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()))
        .await
        .unwrap_or(false)
}

fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| format!("hashing: {e}"))
}

/// Hashes for all tenants at once: one per core.
static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))));
/// One hash at a time per tenant (entries live as long as the process; one per tenant that hashed).
static PER_TENANT: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);

/// Runs `work` on a blocking thread once the tenant's slot and a process slot are free; the slots
/// stay taken until the work ends, even if the caller stopped waiting (its script's deadline).
async fn queued<R: Send + 'static>(tenant: &str, work: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    let own = PER_TENANT.lock().unwrap_or_else(|e| e.into_inner()).entry(tenant.to_string()).or_insert_with(|| Arc::new(Semaphore::new(1))).clone();
    let own = own.acquire_owned().await.map_err(|e| e.to_string())?;
    let slot = SLOTS.clone().acquire_owned().await.map_err(|e| e.to_string())?;
    #[cfg(test)]
    let tenant = tenant.to_string();
    tokio::task::spawn_blocking(move || {
        #[cfg(test)]
        tests::running(&tenant, 1);
        let r = work();
        #[cfg(test)]
        tests::running(&tenant, -1);
        drop((slot, own));
        r
    })
    .await
    .map_err(|e| e.to_string())
}

fn check_password(password: &str, what: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("{what}: the password is longer than {MAX_PASSWORD_BYTES} bytes."));
    }
    Ok(())
}

/// A tenant script's `hashPassword`.
pub async fn hash_for_tenant(tenant: &str, password: String) -> Result<String, String> {
    check_password(&password, "hashPassword")?;
    queued(tenant, move || hash_now(&password)).await?
}

/// A tenant script's `verifyPassword`: `Ok(false)` for a wrong password, an error for a hash that is
/// not an argon2 PHC string within Roost's bounds.
pub async fn verify_for_tenant(tenant: &str, password: String, hash: String) -> Result<bool, String> {
    check_password(&password, "verifyPassword")?;
    let refused = || "verifyPassword: the hash is not an argon2 hash from hashPassword.".to_string();
    if hash.chars().count() > MAX_HASH_CHARS {
        return Err(refused());
    }
    let parsed = PasswordHash::new(&hash).map_err(|_| refused())?;
    if !matches!(parsed.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(refused());
    }
    let params = argon2::Params::try_from(&parsed).map_err(|_| refused())?;
    if params.m_cost() > MAX_M_COST_KIB || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST {
        return Err(format!("verifyPassword: the hash asks for more than Roost allows (at most m={MAX_M_COST_KIB}, t={MAX_T_COST}, p={MAX_P_COST})."));
    }
    queued(tenant, move || PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes running per tenant, and the most seen at once.
    static RUNNING: LazyLock<Mutex<HashMap<String, (i64, i64)>>> = LazyLock::new(Default::default);

    pub(super) fn running(tenant: &str, delta: i64) {
        let mut map = RUNNING.lock().unwrap();
        let e = map.entry(tenant.to_string()).or_default();
        e.0 += delta;
        e.1 = e.1.max(e.0);
    }

    #[tokio::test]
    async fn a_tenant_hash_verifies_and_a_wrong_password_does_not() {
        let h = hash_for_tenant("t", "correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_for_tenant("t", "correct horse".into(), h.clone()).await.unwrap());
        assert!(!verify_for_tenant("t", "wrong".into(), h.clone()).await.unwrap());
        // The portal's verifier reads the same strings.
        assert!(verify("correct horse".into(), h).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_hashing_in_a_loop_delays_another_by_one_hash_at_most() {
        let started = std::time::Instant::now();
        let greedy: Vec<_> = (0..8).map(|_| tokio::spawn(async move { hash_for_tenant("greedy", "pw".into()).await.map(|_| started.elapsed()) })).collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        hash_for_tenant("other", "pw".into()).await.unwrap();
        let other = started.elapsed();
        let mut done = Vec::new();
        for g in greedy {
            done.push(g.await.unwrap().unwrap());
        }
        done.sort();
        // The greedy tenant's hashes ran one at a time; the other's did not wait for them.
        assert_eq!(RUNNING.lock().unwrap()["greedy"], (0, 1), "the greedy tenant's hashes ran in parallel");
        assert!(other < done[3], "the other tenant waited for the greedy one's queue: {other:?} vs {done:?}");
    }

    #[tokio::test]
    async fn hashes_asking_for_too_much_work_are_refused_before_any_work() {
        // A stored hash is tenant data: 4 GiB and 1000 passes would stall the host.
        let greedy = "$argon2id$v=19$m=4194304,t=1000,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
        let started = std::time::Instant::now();
        let e = verify_for_tenant("t", "x".into(), greedy.into()).await.unwrap_err();
        assert!(e.contains("more than Roost allows"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        for bad in ["not a hash", "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA", &format!("$argon2id${}", "x".repeat(300))] {
            assert!(verify_for_tenant("t", "x".into(), bad.into()).await.unwrap_err().contains("not an argon2 hash"), "{bad}");
        }
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(hash_for_tenant("t", long.clone()).await.unwrap_err().contains("longer than"));
        assert!(verify_for_tenant("t", long, greedy.into()).await.unwrap_err().contains("longer than"));
    }
}
