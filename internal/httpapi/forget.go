package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// forgetTimeout bounds one deletion; it runs on when the client goes away, so that an
// erasure the caller asked for is not left half done.
const forgetTimeout = 10 * time.Minute

// userForgotten is the answer of DELETE /api/v1/users/{userId}/events.
type userForgotten struct {
	UserID  string `json:"userId"`
	Deleted int64  `json:"deleted"` // events deleted
}

// forgetUser is DELETE /api/v1/users/{userId}/events: every stored event of the user is
// deleted, and the analytics no longer count them once it answers (an erasure request).
// One runs at a time per process; each is logged with who asked.
func (s *Server) forgetUser(w http.ResponseWriter, r *http.Request) *Error {
	user := r.PathValue("userId")
	if user == "" {
		return validation("userId", "is required")
	}
	if len(user) > maxParamLen {
		return validation("userId", fmt.Sprintf("must be at most %d bytes", maxParamLen))
	}
	select {
	case s.forgets <- struct{}{}:
		defer func() { <-s.forgets }()
	default:
		e := errorf(http.StatusTooManyRequests, "DELETION_RUNNING", "another deletion is running; retry when it ends")
		e.RetryAfter = 5
		return e
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), forgetTimeout)
	defer cancel()
	// The answer may come after the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(forgetTimeout + time.Minute))
	by := callerOf(r).String()
	// Logged before it starts too, so that a deletion cut short by a crash is on record.
	s.log.Info("audit: deleting a user's events", "request_id", RequestID(r.Context()), "by", by, "user_id", user)
	n, err := s.Reading.Forget.ForgetUser(ctx, user)
	if err != nil {
		s.log.Error("audit: deleting a user's events failed; the rest is deleted by asking again", "request_id", RequestID(r.Context()),
			"by", by, "user_id", user, "deleted", n, "err", err)
		return errUnavailable("the event store could not finish the deletion; ask again to delete the rest")
	}
	// Cached answers counted the events.
	if err := s.acache.Purge(ctx); err != nil {
		s.log.Warn("analytics cache purge failed: answers cached before the deletion are served until they expire", "request_id", RequestID(r.Context()), "err", err)
	}
	s.log.Info("audit: user's events deleted", "request_id", RequestID(r.Context()), "by", by, "user_id", user, "deleted", n)
	writeData(w, http.StatusOK, userForgotten{UserID: user, Deleted: n})
	return nil
}
