-- Monitoring (issue 15). Each node writes its own rows of each tenant's counters per minute and per
-- hour (bucket: unix minutes or unix hours), replacing them with its running totals for that bucket
-- at every roll-up; readers add the nodes' rows up. The summed columns are what quotas and the
-- platform view read in SQL; detail (JSON) holds the breakdowns (kind and status class, latency
-- buckets, limit kinds, push outcomes, top tables and APIs) merged in Rust.
create table roost.metrics_minute (
    tenant             text not null,
    bucket             bigint not null,
    node               text not null,
    requests           bigint not null default 0,
    errors             bigint not null default 0,
    client_errors      bigint not null default 0,
    bytes_in           bigint not null default 0,
    bytes_out          bigint not null default 0,
    script_invocations bigint not null default 0,
    script_cpu_us      bigint not null default 0,
    script_errors      bigint not null default 0,
    limit_hits         bigint not null default 0,
    push_queued        bigint not null default 0,
    latency_us_sum     bigint not null default 0,
    detail             text not null default '{}',
    primary key (tenant, bucket, node)
);
create index roost_metrics_minute_bucket on roost.metrics_minute (bucket);

create table roost.metrics_hour (
    tenant             text not null,
    bucket             bigint not null,
    node               text not null,
    requests           bigint not null default 0,
    errors             bigint not null default 0,
    client_errors      bigint not null default 0,
    bytes_in           bigint not null default 0,
    bytes_out          bigint not null default 0,
    script_invocations bigint not null default 0,
    script_cpu_us      bigint not null default 0,
    script_errors      bigint not null default 0,
    limit_hits         bigint not null default 0,
    push_queued        bigint not null default 0,
    latency_us_sum     bigint not null default 0,
    detail             text not null default '{}',
    primary key (tenant, bucket, node)
);
create index roost_metrics_hour_bucket on roost.metrics_hour (bucket);

-- Active devices: a HyperLogLog sketch (base64 registers) of the installation ids each node saw
-- per tenant and UTC day (bucket: unix days); readers merge the nodes' sketches.
create table roost.metrics_devices (
    tenant    text not null,
    bucket    bigint not null,
    node      text not null,
    registers text not null,
    primary key (tenant, bucket, node)
);

-- Node health: each node's heartbeat (epoch milliseconds) at every roll-up.
create table roost.nodes (
    id           text primary key,
    version      text not null,
    started_at   bigint not null,
    heartbeat_at bigint not null,
    rss_bytes    bigint not null default 0,
    tenants      bigint not null default 0
);

-- The tier a tenant is on (empty: the server's default_tier); only an admin sets it.
alter table roost.tenants add column tier text not null default '';
