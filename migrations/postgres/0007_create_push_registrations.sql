-- Push (issue 14): a tenant's device registrations (protocol.md §7.2) and its push credentials.
-- A registration id is reserved by POST /push/registrationids (platform '') and filled by the PUT.
-- They live in the catalog, keyed by tenant like its scripts and providers, so a tenant's own SQL
-- (mssql) cannot read or rewrite them; a tenant's backup carries them.
create table roost.push_registrations (
    tenant          text not null,
    id              text not null,
    platform        text not null,
    device_id       text not null,
    keys            text not null,
    tags            text not null,
    template_name   text not null,
    template_body   text not null,
    headers         text not null,
    expiry          text not null,
    installation_id text not null,
    user_id         text not null,
    created_at      text not null,
    updated_at      text not null,
    primary key (tenant, id)
);
create index roost_push_registrations_device on roost.push_registrations (tenant, platform, device_id);

-- The VAPID key pair of Web Push (P-256; the private key sealed with the platform key, bound to the
-- tenant), and later the FCM and APNs credentials, one row per tenant.
create table roost.push_credentials (
    tenant        text primary key,
    vapid_public  text not null,
    vapid_private text not null,
    updated_at    text not null
);
