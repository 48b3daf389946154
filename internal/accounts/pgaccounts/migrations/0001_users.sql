-- Users and their dashboard settings. Emails are stored in lower case; the unique index on
-- lower(email) keeps them unique whatever a writer did, and is the index UserByEmail uses.
CREATE TABLE users (
	id            text PRIMARY KEY,
	email         text NOT NULL,
	role          text NOT NULL CONSTRAINT users_role_check
	              CHECK (role IN ('ADMIN', 'OPERATOR', 'VIEWER', 'API_CLIENT')),
	status        text NOT NULL CONSTRAINT users_status_check
	              CHECK (status IN ('ACTIVE', 'INACTIVE', 'SUSPENDED', 'PENDING_VERIFICATION')),
	invited_by    text REFERENCES users (id) ON DELETE SET NULL,
	created_at    timestamptz NOT NULL,
	last_login_at timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_created_at ON users (created_at, id);

CREATE TABLE user_settings (
	user_id    text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	settings   jsonb NOT NULL CONSTRAINT user_settings_object CHECK (jsonb_typeof(settings) = 'object'),
	updated_at timestamptz NOT NULL DEFAULT now()
);
