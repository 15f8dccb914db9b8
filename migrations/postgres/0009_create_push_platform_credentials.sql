-- Push (issue 14): a tenant's credentials for the native push services, one row per platform:
-- `fcm` (FCM HTTP v1: a Google service account) and `apns` (APNs token authentication: a .p8 key).
-- `config` holds the parts that may be shown (project id, client email, key id, team id, topic,
-- environment) as JSON; `secret` the private key, sealed with the platform key and bound to the
-- tenant and platform. Neither is ever shown back.
create table roost.push_platform_credentials (
    tenant     text not null,
    platform   text not null,
    config     text not null,
    secret     text not null,
    updated_at text not null,
    primary key (tenant, platform)
);
