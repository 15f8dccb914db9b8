-- Issue 17 (tenant string collation, rowversion) changes tenant databases, not the catalog: each
-- tenant file upgrades itself when its writer opens it (roost-storage/src/sqlite_engine.rs,
-- `prepare_writer`). This migration keeps both dialects' numbering equal.
select 1;
