-- Server scripts of tenants (table scripts, custom APIs, scheduler jobs, shared modules, extensions),
-- their logs, and the runs of scheduled jobs. A job run's (tenant, job, due) is unique: the node whose
-- insert wins runs it, so each due run happens once across nodes.
create table roost.tenant_scripts (
    tenant     text not null references roost.tenants(name) on delete cascade,
    kind       text not null check (kind in ('table', 'api', 'job', 'shared', 'extension')),
    name       text not null,
    name_lower text not null,
    body       text not null,
    meta       text not null default '{}',
    updated_at timestamptz not null default now(),
    primary key (tenant, kind, name_lower)
);

create table roost.script_logs (
    id      bigserial primary key,
    tenant  text not null,
    time    timestamptz not null default now(),
    level   text not null,
    source  text not null,
    message text not null
);
create index script_logs_by_tenant on roost.script_logs (tenant, id);

create table roost.job_runs (
    id          bigserial primary key,
    tenant      text not null,
    job         text not null,
    due         timestamptz not null,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    outcome     text,
    duration_ms bigint,
    unique (tenant, job, due)
);
