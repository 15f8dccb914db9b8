-- Issue 17: tenant strings compare as SQL Server's SQL_Latin1_General_CP1_CI_AS did, and __version is a
-- rowversion (see roost-storage/src/collation.rs and ddl.rs).

-- CLDR root order at secondary strength: case-insensitive, accent-sensitive, accented letters beside
-- their base letters. Nondeterministic, so strings that differ only in case are equal (and unique).
create collation if not exists roost.ci_as (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

-- The folded form substring searches compare (LIKE and strpos refuse nondeterministic collations):
-- NFKC, full uppercase, full lowercase (ICU root), final sigma as sigma; ASCII text (as many bytes as
-- characters) is only lower-cased, which is the same. collation.rs's `fold` is its twin on SQLite.
-- Normalizing only what is not normalized yet, and not `strict`: PostgreSQL inlines only a function
-- whose body it can see is strict, and a call that is not inlined costs tens of microseconds per row
-- (NULL still gives NULL).
create or replace function roost.fold(s text) returns text
    language sql immutable parallel safe
    as $$ select case when octet_length(s) = char_length(s) then lower(s collate "C")
                      else translate(lower(upper((case when s is nfkc normalized then s else normalize(s, NFKC) end) collate "und-x-icu") collate "und-x-icu"), 'ς', 'σ') collate "C" end $$;

-- Existing tenants: string columns move from citext to the collation (their indexes are rebuilt with
-- it), each tenant schema gets its rowversion sequence, and the random versions of before are renumbered
-- in the order of each row's last write.
do $$
declare
    c record;
    s record;
    t record;
    n bigint;
    rows_in bigint;
begin
    for c in
        select table_schema, table_name, column_name from information_schema.columns
        where table_schema like 't\_%' and udt_name = 'citext'
    loop
        execute format('alter table %I.%I alter column %I type text collate roost.ci_as', c.table_schema, c.table_name, c.column_name);
    end loop;
    for s in select nspname from pg_namespace where nspname like 't\_%' loop
        execute format('create sequence if not exists %I.__rowversion', s.nspname);
        n := 0;
        for t in
            select table_name from information_schema.columns
            where table_schema = s.nspname and column_name = '__version'
        loop
            execute format(
                'update %I.%I u set "__version" = int8send(o.rn + %s) from (select "__seq", row_number() over (order by "__updatedAt", "__seq") as rn from %I.%I) o where u."__seq" = o."__seq"',
                s.nspname, t.table_name, n, s.nspname, t.table_name);
            get diagnostics rows_in = row_count;
            n := n + rows_in;
        end loop;
        if n > 0 then
            perform setval(format('%I.__rowversion', s.nspname), n);
        end if;
    end loop;
end $$;
