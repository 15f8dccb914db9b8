-- A tenant's identity providers (issue 13): OpenID Connect issuers and presets, by the name used in
-- /login/{name}. The client secret is sealed with the platform's identity key (XChaCha20-Poly1305,
-- bound to tenant and provider); `config` holds the rest as JSON (discovery URL, scopes, audiences).
create table identity_providers (
    tenant        text not null,
    name          text not null,
    kind          text not null,
    client_id     text not null,
    secret_sealed text not null,
    secret_hint   text not null,
    config        text not null,
    updated_at    text not null,
    primary key (tenant, name)
);
