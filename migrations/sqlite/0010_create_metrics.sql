-- Monitoring (issue 15). Each node writes its own rows of each tenant's counters per minute and per
-- hour (bucket: unix minutes or unix hours), replacing them with its running totals for that bucket
-- at every roll-up; readers add the nodes' rows up. The summed columns are what quotas and the
-- platform view read in SQL; detail (JSON) holds the breakdowns (kind and status class, latency
-- buckets, limit kinds, push outcomes, top tables and APIs) merged in Rust.
create table metrics_minute (
    tenant             text not null,
    bucket             integer not null,
    node               text not null,
    requests           integer not null default 0,
    errors             integer not null default 0,
    client_errors      integer not null default 0,
    bytes_in           integer not null default 0,
    bytes_out          integer not null default 0,
    script_invocations integer not null default 0,
    script_cpu_us      integer not null default 0,
    script_errors      integer not null default 0,
    limit_hits         integer not null default 0,
    push_queued        integer not null default 0,
    latency_us_sum     integer not null default 0,
    detail             text not null default '{}',
    primary key (tenant, bucket, node)
);
create index metrics_minute_bucket on metrics_minute (bucket);

create table metrics_hour (
    tenant             text not null,
    bucket             integer not null,
    node               text not null,
    requests           integer not null default 0,
    errors             integer not null default 0,
    client_errors      integer not null default 0,
    bytes_in           integer not null default 0,
    bytes_out          integer not null default 0,
    script_invocations integer not null default 0,
    script_cpu_us      integer not null default 0,
    script_errors      integer not null default 0,
    limit_hits         integer not null default 0,
    push_queued        integer not null default 0,
    latency_us_sum     integer not null default 0,
    detail             text not null default '{}',
    primary key (tenant, bucket, node)
);
create index metrics_hour_bucket on metrics_hour (bucket);

-- Active devices: a HyperLogLog sketch (base64 registers) of the installation ids each node saw
-- per tenant and UTC day (bucket: unix days); readers merge the nodes' sketches.
create table metrics_devices (
    tenant    text not null,
    bucket    integer not null,
    node      text not null,
    registers text not null,
    primary key (tenant, bucket, node)
);

-- Node health: each node's heartbeat (epoch milliseconds) at every roll-up.
create table nodes (
    id           text primary key,
    version      text not null,
    started_at   integer not null,
    heartbeat_at integer not null,
    rss_bytes    integer not null default 0,
    tenants      integer not null default 0
);

-- The tier a tenant is on (empty: the server's default_tier); only an admin sets it.
alter table tenants add column tier text not null default '';
