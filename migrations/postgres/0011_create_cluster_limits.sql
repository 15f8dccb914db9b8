-- State every node shares, so a limit holds across the cluster rather than per node (issue 16).

-- One row per counted event of a sliding-window rate limit (failed portal sign-ins per e-mail and per
-- address, login requests per address and per provider). Rows older than the longest window are pruned.
create table roost.rate_events (
    key text not null,
    at bigint not null
);
create index roost_rate_events_key_at on roost.rate_events (key, at);

-- Single-use keys (client-directed id tokens already used) until they expire.
create table roost.used_keys (
    key text primary key,
    expires bigint not null
);

-- Facts every node of a platform must agree on (the identity key's fingerprint: a node started with
-- another key could not open the secrets the others sealed, and refuses to start).
create table roost.platform (
    key text primary key,
    value text not null
);
