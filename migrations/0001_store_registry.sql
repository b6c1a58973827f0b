-- Which D1 eventlog table belongs to which store (STORAGE=d1).
--
-- The reference names a store's table eventlog_7_<storeId with every non-alphanumeric character
-- replaced by _>, so stores such as "a-b" and "a_b" would share one table. The sync backend
-- registers each store's table here: the first store to use a name keeps it (so stores whose ids
-- do not collide keep the reference's layout), and a colliding store gets a name with a hash of
-- its exact id appended. The per-store eventlog tables themselves are created on first use.
CREATE TABLE IF NOT EXISTS livestore_stores (
  storeId TEXT PRIMARY KEY NOT NULL,
  eventlogTable TEXT NOT NULL UNIQUE,
  createdAt TEXT NOT NULL
) STRICT;
