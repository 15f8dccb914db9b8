-- The control plane: tenants ("mobile services") and their tables. Tenant data lives in one schema
-- per tenant (t_<name>). citext gives tenant string columns the case-insensitive collation of R3.
create extension if not exists citext;
create schema if not exists roost;

create table roost.tenants (
    name            text not null primary key,
    application_key text not null,
    master_key      text not null,
    settings        text not null default '{}',
    created_at      timestamptz not null default now()
);

create table roost.tenant_tables (
    tenant      text not null references roost.tenants(name) on delete cascade,
    name        text not null,
    name_lower  text not null,
    id_kind     text not null check (id_kind in ('string', 'integer')),
    soft_delete boolean not null default false,
    permissions text not null,
    created_at  timestamptz not null default now(),
    primary key (tenant, name_lower)
);
