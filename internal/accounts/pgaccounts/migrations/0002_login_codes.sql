-- Emailed sign-in codes, kept only as keyed hashes. Looked up by (email, newest first) and
-- counted per email since a time; old ones are deleted by expiry.
CREATE TABLE login_codes (
	id         text PRIMARY KEY,
	email      text NOT NULL,
	code_hash  bytea NOT NULL,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	attempts   integer NOT NULL DEFAULT 0,
	used_at    timestamptz
);
CREATE INDEX login_codes_email_created ON login_codes (email, created_at);
CREATE INDEX login_codes_expires_at ON login_codes (expires_at);
