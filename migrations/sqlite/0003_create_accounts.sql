-- Platform accounts of the portal and /manage/v1: roles, tenant ownership, personal API tokens, and
-- portal sessions (tower-sessions records). Secrets are stored only as hashes: passwords as argon2id
-- PHC strings, tokens and session ids as SHA-256 hex.
create table accounts (
    id            text primary key,
    email         text not null unique collate nocase,
    password_hash text not null,
    role          text not null check (role in ('admin', 'owner', 'support')),
    created_at    text not null
);

create table tenant_owners (
    tenant     text not null collate nocase,
    account_id text not null references accounts(id) on delete cascade,
    primary key (tenant, account_id)
);

create table api_tokens (
    id           text primary key,
    account_id   text not null references accounts(id) on delete cascade,
    name         text not null,
    token_hash   text not null unique,
    created_at   text not null,
    last_used_at text
);

create table portal_sessions (
    id_hash    text primary key,
    data       text not null,
    expires_at integer not null
);
create index portal_sessions_by_expiry on portal_sessions (expires_at);
