package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/httprate"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/clientip"
	"github.com/evp-dev/evp/internal/event"
)

// caller is who made a request: a signed-in user or an API key (or, on public analytics,
// nobody).
type caller struct {
	user *accounts.User
	key  *accounts.APIKey
}

// String names the caller for the log: the user's id and email, or the API key's id.
func (c caller) String() string {
	switch {
	case c.user != nil:
		return c.user.ID + " " + c.user.Email
	case c.key != nil:
		return "api key " + c.key.ID
	}
	return "anonymous"
}

// callerOf returns the authenticated caller of r.
func callerOf(r *http.Request) caller {
	if st := stateOf(r.Context()); st != nil {
		return st.caller
	}
	return caller{}
}

type handler func(http.ResponseWriter, *http.Request) *Error

// guard admits a request whose caller has permission p, by session token
// (Authorization: Bearer) or API key (x-api-key), and answers 401 or 403 otherwise. The
// permission table is accounts.rolePermissions; API keys have accounts.APIKey.Allows.
func (s *Server) guard(p accounts.Permission, h handler) http.HandlerFunc {
	return withCaller(func(r *http.Request, st *reqState) (caller, *Error) { return s.authenticate(r, p, st) }, h)
}

// withCaller runs h with the caller auth finds, or answers auth's error. The caller is
// kept in the request's state (made by wrap; made here when a guard is served without it).
func withCaller(auth func(r *http.Request, st *reqState) (caller, *Error), h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		if st == nil {
			st = &reqState{}
			r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		}
		c, e := auth(r, st)
		if e == nil {
			st.caller = c
			e = h(w, r)
		}
		if e != nil {
			writeError(w, e)
		}
	}
}

// authenticate finds the caller of r; an API key's description is kept in st.
func (s *Server) authenticate(r *http.Request, p accounts.Permission, st *reqState) (caller, *Error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		u, e := s.sessionUser(r.Context(), auth)
		if e != nil {
			return caller{}, e
		}
		if !u.Role.Allows(p) {
			return caller{}, errorf(http.StatusForbidden, "FORBIDDEN", "role %s may not do this (needs %s)", u.Role, p)
		}
		return caller{user: &u}, nil
	}
	if key := r.Header.Get("X-Api-Key"); key != "" { // x-api-key, canonical: Get need not allocate it
		var e *Error
		if st.key, e = s.apiKey(r, key, p); e != nil {
			return caller{}, e
		}
		return caller{key: &st.key}, nil
	}
	if p == accounts.PermReadAnalytics && s.Auth.AnalyticsPublic {
		return caller{}, nil
	}
	if p == accounts.PermIngest || p == accounts.PermIngestStats {
		return caller{}, errorf(http.StatusUnauthorized, "MISSING_API_KEY", "send an API key in the x-api-key header")
	}
	return caller{}, errorf(http.StatusUnauthorized, "UNAUTHORIZED", "sign in (Authorization: Bearer <token>) or send an API key in the x-api-key header")
}

// apiKey checks the API key plain for a request of r that needs p: it answers 401 for a key
// that is unknown, revoked or expired, 503 when it cannot be checked, and 403 when the key
// may not do p, or may not send events from r's web origin. A key let through counts as
// used (MarkUsed); a key that authenticated is returned even when refused.
func (s *Server) apiKey(r *http.Request, plain string, p accounts.Permission) (accounts.APIKey, *Error) {
	k, err := s.Auth.Keys.Authenticate(r.Context(), plain)
	switch {
	case errors.Is(err, accounts.ErrInvalidKey):
		return k, errorf(http.StatusUnauthorized, "INVALID_API_KEY", "the API key is unknown, revoked or expired")
	case err != nil:
		s.log.Error("api key check failed", "request_id", RequestID(r.Context()), "err", err)
		return accounts.APIKey{}, errUnavailable("the account store is unavailable; retry shortly")
	case p == accounts.PermIngest && !k.AllowsOrigin(r.Header.Get("Origin")):
		return k, errorf(http.StatusForbidden, "FORBIDDEN", "this API key may not send events from origin %.200q", r.Header.Get("Origin"))
	case !k.Allows(p) && k.IngestOnly:
		return k, errorf(http.StatusForbidden, "FORBIDDEN", "this API key is ingest-only: it may only send events (needs %s)", p)
	case !k.Allows(p):
		return k, errorf(http.StatusForbidden, "FORBIDDEN", "API keys may not do this (needs %s); sign in to the dashboard", p)
	}
	s.Auth.Keys.MarkUsed(k)
	return k, nil
}

// sessionUser checks an Authorization header and returns the active user it stands for.
func (s *Server) sessionUser(ctx context.Context, header string) (accounts.User, *Error) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return accounts.User{}, errorf(http.StatusUnauthorized, "UNAUTHORIZED", "the Authorization header must be \"Bearer <token>\"")
	}
	if s.Auth.Accounts == nil {
		return accounts.User{}, errorf(http.StatusUnauthorized, "UNAUTHORIZED", "sign-in is not enabled on this server; use an API key")
	}
	u, err := s.Auth.Accounts.Authenticate(ctx, strings.TrimSpace(token))
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, accounts.ErrInvalidToken):
		return u, errorf(http.StatusUnauthorized, "UNAUTHORIZED", "the session is invalid or expired; sign in again")
	case errors.Is(err, accounts.ErrAccountDisabled):
		return u, errorf(http.StatusUnauthorized, "UNAUTHORIZED", "the account is suspended or inactive")
	default:
		s.log.Error("session check failed", "request_id", RequestID(ctx), "err", err)
		return u, errUnavailable("the account store is unavailable; retry shortly")
	}
}

// requireUser admits any signed-in, active user (GET /api/auth/me).
func (s *Server) requireUser(h handler) http.HandlerFunc {
	return withCaller(func(r *http.Request, _ *reqState) (caller, *Error) {
		u, e := s.sessionUser(r.Context(), r.Header.Get("Authorization"))
		return caller{user: &u}, e
	}, h)
}

// authLimiter limits /api/auth/* to Auth.RateLimit requests per minute per client address
// (clientKey).
func (s *Server) authLimiter() func(http.Handler) http.Handler {
	limit := s.Auth.RateLimit
	if limit <= 0 {
		limit = 100
	}
	opts := []httprate.Option{
		httprate.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Error("rate limit check failed", "request_id", RequestID(r.Context()), "err", err)
			writeError(w, errUnavailable("the rate-limit store is unavailable; retry shortly"))
		})}
	if s.Auth.LimitCounter != nil {
		opts = append(opts, httprate.WithLimitCounter(s.Auth.LimitCounter))
	}
	return httprate.LimitBy(limit, time.Minute, s.clientKey, append(opts,
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			// httprate calls this also after the error handler above has answered (the
			// counter store failed); a second answer would be appended to the first.
			if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
				return
			}
			e := errorf(http.StatusTooManyRequests, "RATE_LIMITED", "too many requests to /api/auth from this address; at most %d per minute", limit)
			if w.Header().Get("Retry-After") == "" {
				e.RetryAfter = 60
			}
			writeError(w, e)
		}))...)
}

// clientKey is the rate-limit key of r's client (clientip.Key), or RemoteAddr when that is
// not an IP address.
func (s *Server) clientKey(r *http.Request) (string, error) {
	if a := s.clients.Addr(r); a.IsValid() {
		return clientip.Key(a), nil
	}
	return r.RemoteAddr, nil
}

// readSmall decodes a small JSON request body into dst.
func readSmall(r *http.Request, dst any) *Error {
	buf, e := readJSONBody(r, 64<<10)
	if e != nil {
		return e
	}
	defer releaseBody(buf)
	if err := json.Unmarshal(buf.Bytes(), dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return validation(te.Field, "must be a "+te.Type.String())
		}
		return errorf(http.StatusBadRequest, "INVALID_JSON", "the body is not a JSON object: %v", err)
	}
	return nil
}

func (s *Server) accountError(r *http.Request, err error, what string) *Error {
	switch {
	case errors.Is(err, accounts.ErrInvalidEmail):
		return validation("email", "must be an email address like name@example.com")
	case errors.Is(err, accounts.ErrInvalidRole):
		return validation("role", "must be one of ADMIN, OPERATOR, VIEWER, API_CLIENT")
	case errors.Is(err, accounts.ErrInvalidStatus):
		return validation("status", "must be ACTIVE, INACTIVE or SUSPENDED")
	case errors.Is(err, accounts.ErrUserNotFound):
		return errorf(http.StatusNotFound, "NOT_FOUND", "no such user")
	case errors.Is(err, accounts.ErrKeyNotFound):
		return errorf(http.StatusNotFound, "NOT_FOUND", "no such API key")
	case errors.Is(err, accounts.ErrEmailTaken):
		return errorf(http.StatusConflict, "CONFLICT", "a user with this email exists")
	case errors.Is(err, accounts.ErrLastAdmin):
		return errorf(http.StatusConflict, "LAST_ADMIN", "this would leave no active ADMIN; make someone else ADMIN first")
	}
	s.log.Error(what+" failed", "request_id", RequestID(r.Context()), "err", err)
	return errUnavailable("the account store is unavailable; retry shortly")
}

// postRequestCode is POST /api/auth/request-code.
func (s *Server) postRequestCode(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Email string `json:"email"`
	}
	if e := readSmall(r, &body); e != nil {
		return e
	}
	email, err := accounts.NormalizeEmail(body.Email)
	if err != nil {
		return validation("email", "must be an email address like name@example.com")
	}
	err = s.Auth.Accounts.RequestCode(r.Context(), email)
	var tooMany *accounts.TooManyCodesError
	switch {
	case err == nil:
		writeData(w, http.StatusOK, map[string]string{"message": "Verification code sent to " + email})
		return nil
	case errors.As(err, &tooMany):
		e := errorf(http.StatusTooManyRequests, "RATE_LIMITED", "at most %d codes per email every %d minutes; retry later",
			accounts.MaxCodesInWindow, int(accounts.CodeWindow.Minutes()))
		e.RetryAfter = int(math.Ceil(tooMany.RetryAfter.Seconds()))
		return e
	case errors.Is(err, accounts.ErrNoDelivery):
		e := errorf(http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "sign-in codes cannot be delivered: set SMTP_HOST and SMTP_FROM, or EVP_DEV_LOGIN=true to write codes to the log")
		e.RetryAfter = 300
		return e
	}
	return s.accountError(r, err, "request code")
}

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

// postVerify is POST /api/auth/verify.
func (s *Server) postVerify(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Email string `json:"email"`
		Code  string `json:"code"`
	}
	if e := readSmall(r, &body); e != nil {
		return e
	}
	if _, err := accounts.NormalizeEmail(body.Email); err != nil {
		return validation("email", "must be an email address like name@example.com")
	}
	if !sixDigits.MatchString(body.Code) {
		return validation("code", "must be the 6 digits of the emailed code")
	}
	sess, err := s.Auth.Accounts.Verify(r.Context(), body.Email, body.Code)
	switch {
	case err == nil:
		writeData(w, http.StatusOK, map[string]any{
			"token":     sess.Token,
			"expiresAt": sess.ExpiresAt.UTC().Truncate(time.Second),
			"user":      map[string]any{"id": sess.User.ID, "email": sess.User.Email, "role": sess.User.Role},
		})
		return nil
	case errors.Is(err, accounts.ErrInvalidCode):
		return errorf(http.StatusUnauthorized, "INVALID_CODE", "the code is wrong, expired or used up; ask for a new one")
	case errors.Is(err, accounts.ErrAccountDisabled):
		return errorf(http.StatusForbidden, "FORBIDDEN", "the account is suspended or inactive; ask an ADMIN")
	}
	return s.accountError(r, err, "verify code")
}

// getMe is GET /api/auth/me.
func (s *Server) getMe(w http.ResponseWriter, r *http.Request) *Error {
	writeData(w, http.StatusOK, callerOf(r).user)
	return nil
}

// postAPIKey is POST /api/auth/api-key.
func (s *Server) postAPIKey(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Name           string   `json:"name"`
		ExpiresInDays  *int     `json:"expiresInDays"`
		IngestOnly     bool     `json:"ingestOnly"`
		AllowedOrigins []string `json:"allowedOrigins"`
	}
	if e := readSmall(r, &body); e != nil {
		return e
	}
	name := strings.TrimSpace(body.Name)
	if name == "" || len(name) > accounts.MaxKeyNameLen {
		return validation("name", "is required, at most 100 characters")
	}
	var expires *time.Time
	if body.ExpiresInDays != nil {
		d := *body.ExpiresInDays
		if d < 1 || d > 3650 {
			return validation("expiresInDays", "must be from 1 to 3650")
		}
		t := time.Now().UTC().Add(time.Duration(d) * 24 * time.Hour).Truncate(time.Millisecond)
		expires = &t
	}
	origins, err := accounts.CheckOrigins(body.AllowedOrigins)
	if err != nil {
		return validation("allowedOrigins", err.Error())
	}
	plain, k, err := s.Auth.Accounts.CreateKey(r.Context(), *callerOf(r).user,
		accounts.NewKey{Name: name, ExpiresAt: expires, IngestOnly: body.IngestOnly, AllowedOrigins: origins})
	if err != nil {
		s.log.Error("create api key failed", "request_id", RequestID(r.Context()), "err", err)
		return errorf(http.StatusInternalServerError, "API_KEY_GENERATION_ERROR", "the key could not be stored; retry")
	}
	writeData(w, http.StatusOK, map[string]any{"apiKey": plain, "message": "API key generated successfully", "key": k})
	return nil
}

// getAPIKeys is GET /api/auth/api-keys.
func (s *Server) getAPIKeys(w http.ResponseWriter, r *http.Request) *Error {
	keys, err := s.Auth.Accounts.ListKeys(r.Context())
	if err != nil {
		return s.accountError(r, err, "list api keys")
	}
	writeData(w, http.StatusOK, keys)
	return nil
}

// deleteAPIKey is DELETE /api/auth/api-keys/{id}.
func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request) *Error {
	id := r.PathValue("id")
	at, err := s.Auth.Accounts.RevokeKey(r.Context(), id)
	if err != nil {
		return s.accountError(r, err, "revoke api key")
	}
	writeData(w, http.StatusOK, map[string]any{"id": id, "revokedAt": at})
	return nil
}

// getUsers is GET /api/users.
func (s *Server) getUsers(w http.ResponseWriter, r *http.Request) *Error {
	users, err := s.Auth.Accounts.ListUsers(r.Context())
	if err != nil {
		return s.accountError(r, err, "list users")
	}
	writeData(w, http.StatusOK, users)
	return nil
}

// postUser is POST /api/users (invite).
func (s *Server) postUser(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if e := readSmall(r, &body); e != nil {
		return e
	}
	if body.Role == "" {
		body.Role = string(accounts.RoleViewer)
	}
	u, err := s.Auth.Accounts.Invite(r.Context(), *callerOf(r).user, body.Email, accounts.Role(body.Role))
	if err != nil {
		return s.accountError(r, err, "invite user")
	}
	writeData(w, http.StatusCreated, u)
	return nil
}

// patchUser is PATCH /api/users/{id}.
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Role   *string `json:"role"`
		Status *string `json:"status"`
	}
	if e := readSmall(r, &body); e != nil {
		return e
	}
	var ch accounts.UserChange
	if body.Role != nil {
		role := accounts.Role(*body.Role)
		ch.Role = &role
	}
	if body.Status != nil {
		st := accounts.Status(*body.Status)
		ch.Status = &st
	}
	if ch.Role == nil && ch.Status == nil {
		e := validation("role", "send role, status or both")
		e.Details = []event.FieldError{{Path: "role", Reason: "send role, status or both"}, {Path: "status", Reason: "send role, status or both"}}
		return e
	}
	u, err := s.Auth.Accounts.UpdateUser(r.Context(), *callerOf(r).user, r.PathValue("id"), ch)
	if err != nil {
		return s.accountError(r, err, "update user")
	}
	writeData(w, http.StatusOK, u)
	return nil
}

// guardless runs a handler that needs no caller (sign-in itself).
func (s *Server) guardless(h handler) http.HandlerFunc {
	return withCaller(func(*http.Request, *reqState) (caller, *Error) { return caller{}, nil }, h)
}
