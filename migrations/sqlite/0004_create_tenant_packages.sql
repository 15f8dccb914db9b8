-- A tenant's npm dependencies (issue 6): its package.json (dependencies only), the resolved
-- package-lock.json every node installs from, and the lock's SHA-256 (the local cache key).
create table tenant_packages (
    tenant     text primary key,
    manifest   text not null,
    lock       text not null,
    lock_hash  text not null,
    updated_at text not null
);
