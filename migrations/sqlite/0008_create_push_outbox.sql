-- Push delivery (issue 14): each push.send is a row of push_sends (its counts), and one outbox row
-- per (send, registration) until it is delivered, expired, failed or pruned. Rows are written in one
-- transaction with their send, before the script's `success` runs; a worker claims them
-- (claimed_until, epoch milliseconds) and deletes each as it ends.
create table push_sends (
    tenant     text not null,
    id         text not null,
    platform   text not null,
    tags       text not null,
    created_at text not null,
    queued     integer not null default 0,
    delivered  integer not null default 0,
    retried    integer not null default 0,
    expired    integer not null default 0,
    failed     integer not null default 0,
    pruned     integer not null default 0,
    primary key (tenant, id)
);
create index push_sends_created on push_sends (tenant, created_at);

create table push_outbox (
    id              integer primary key autoincrement,
    tenant          text not null,
    send_id         text not null,
    registration_id text not null,
    platform        text not null,
    endpoint        text not null,
    keys            text not null,
    payload         text not null,
    ttl             integer not null,
    urgency         text not null,
    topic           text not null,
    expires_at      integer not null,
    next_at         integer not null,
    attempts        integer not null default 0,
    claimed_until   integer not null default 0
);
create index push_outbox_due on push_outbox (next_at, claimed_until);
