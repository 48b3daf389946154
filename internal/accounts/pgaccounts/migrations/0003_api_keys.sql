-- API keys by their SHA-256 only. A key made with `evp apikey create` has no owner.
CREATE TABLE api_keys (
	id           text PRIMARY KEY,
	name         text NOT NULL,
	key_hash     bytea NOT NULL CONSTRAINT api_keys_key_hash_len CHECK (octet_length(key_hash) = 32),
	prefix       text NOT NULL,
	last4        text NOT NULL,
	user_id      text REFERENCES users (id) ON DELETE SET NULL,
	created_at   timestamptz NOT NULL,
	last_used_at timestamptz,
	expires_at   timestamptz,
	revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_created_at ON api_keys (created_at DESC, id DESC);
CREATE INDEX api_keys_user_id ON api_keys (user_id);
