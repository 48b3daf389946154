-- An ingest-only key may only send events: one a web page or an app can carry.
ALTER TABLE api_keys ADD COLUMN ingest_only boolean NOT NULL DEFAULT false;
