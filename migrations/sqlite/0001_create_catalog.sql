-- The control plane: tenants ("mobile services") and their tables. Tenant data lives elsewhere
-- (one database file per tenant under tenants/).
create table tenants (
    name            text not null primary key collate nocase,
    application_key text not null,
    master_key      text not null,
    settings        text not null default '{}',
    created_at      text not null
);

create table tenant_tables (
    tenant      text not null collate nocase references tenants(name) on delete cascade,
    name        text not null collate nocase,
    id_kind     text not null check (id_kind in ('string', 'integer')),
    soft_delete integer not null default 0,
    permissions text not null,
    created_at  text not null,
    primary key (tenant, name)
);
