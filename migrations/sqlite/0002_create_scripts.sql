-- Server scripts of tenants (table scripts, custom APIs, scheduler jobs, shared modules, extensions),
-- their logs, and the runs of scheduled jobs.
create table tenant_scripts (
    tenant     text not null collate nocase references tenants(name) on delete cascade,
    kind       text not null check (kind in ('table', 'api', 'job', 'shared', 'extension')),
    name       text not null collate nocase,
    body       text not null,
    meta       text not null default '{}',
    updated_at text not null,
    primary key (tenant, kind, name)
);

create table script_logs (
    id      integer primary key autoincrement,
    tenant  text not null collate nocase,
    time    text not null,
    level   text not null,
    source  text not null,
    message text not null
);
create index script_logs_by_tenant on script_logs (tenant, id);

create table job_runs (
    id          integer primary key autoincrement,
    tenant      text not null collate nocase,
    job         text not null collate nocase,
    due         text not null,
    started_at  text not null,
    finished_at text,
    outcome     text,
    duration_ms integer,
    unique (tenant, job, due)
);
