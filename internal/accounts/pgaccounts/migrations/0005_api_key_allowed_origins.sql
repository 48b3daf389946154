-- The web origins browsers may send from with a key, space-separated; empty: any.
ALTER TABLE api_keys ADD COLUMN allowed_origins text NOT NULL DEFAULT '';
