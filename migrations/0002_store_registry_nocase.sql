-- SQLite table names ignore case, so stores "Upper" and "upper" would map to one eventlog table
-- (eventlog_7_Upper is eventlog_7_upper). The registry's uniqueness must ignore case as well, so
-- that the second of two such stores to register gets a table of its own, even when both
-- register at the same moment.
CREATE UNIQUE INDEX IF NOT EXISTS livestore_stores_table_nocase ON livestore_stores (eventlogTable COLLATE NOCASE);
