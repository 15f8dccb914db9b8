-- Push delivery (issue 14): each push.send is a row of push_sends (its counts), and one outbox row
-- per (send, registration) until it is delivered, expired, failed or pruned. Rows are written in one
-- transaction with their send, before the script's `success` runs; a worker claims them
-- (claimed_until, epoch milliseconds) and deletes each as it ends.
create table roost.push_sends (
    tenant     text not null,
    id         text not null,
    platform   text not null,
    tags       text not null,
    created_at text not null,
    queued     bigint not null default 0,
    delivered  bigint not null default 0,
    retried    bigint not null default 0,
    expired    bigint not null default 0,
    failed     bigint not null default 0,
    pruned     bigint not null default 0,
    primary key (tenant, id)
);
create index roost_push_sends_created on roost.push_sends (tenant, created_at);

create table roost.push_outbox (
    id              bigserial primary key,
    tenant          text not null,
    send_id         text not null,
    registration_id text not null,
    platform        text not null,
    endpoint        text not null,
    keys            text not null,
    payload         text not null,
    ttl             bigint not null,
    urgency         text not null,
    topic           text not null,
    expires_at      bigint not null,
    next_at         bigint not null,
    attempts        bigint not null default 0,
    claimed_until   bigint not null default 0
);
create index roost_push_outbox_due on roost.push_outbox (next_at, claimed_until);
