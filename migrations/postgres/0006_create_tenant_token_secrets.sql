-- A tenant's user-token signing secret (issue 13), set when its owner revokes every user token.
-- Without a row, tokens are signed with the master key, as Mobile Services signed them.
create table roost.tenant_token_secrets (
    tenant     text primary key,
    secret     text not null,
    rotated_at text not null
);
