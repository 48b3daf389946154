package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// importAnswer answers POST /api/v1/events/import.
type importAnswer struct {
	Accepted   int            `json:"accepted"`
	Duplicates int            `json:"duplicates"`
	Rejected   []rejectedLine `json:"rejected"`
}

// rejectedLine is a line of an import that is not an event, and why.
type rejectedLine struct {
	Line   int                `json:"line"` // from 1, counting empty lines
	Errors []event.FieldError `json:"errors"`
}

// postImport is POST /api/v1/events/import: up to event.MaxBatch events, one per line, as
// evp export writes them (event.DecodeImport), buffered as a batch is. Lines that are not
// events are answered with their number and reasons and the others buffered, or, with
// strict=true, the whole request is refused.
func (s *Server) postImport(w http.ResponseWriter, r *http.Request) *Error {
	if !s.ready.Load() {
		return errUnavailable("evp is not ready or is shutting down")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-ndjson" {
		return errorf(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type %q is not supported; send application/x-ndjson, one event per line", r.Header.Get("Content-Type"))
	}
	strict := false
	if v := r.URL.Query().Get("strict"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return validation("strict", "must be true or false")
		}
		strict = b
	}
	hold := bodyHold{b: s.budget}
	defer hold.release()
	buf, e := readBodyBytes(r, s.Ingestion.MaxBodyBytes, &hold, false)
	if e != nil {
		return e
	}
	defer releaseBody(buf)
	now := time.Now().UTC()
	ans := importAnswer{Rejected: []rejectedLine{}}
	var events []event.Event
	body := buf.Bytes()
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(events)+len(ans.Rejected) == event.MaxBatch {
			return validation("body", fmt.Sprintf("must hold at most %d events, one per line", event.MaxBatch))
		}
		ev, err := event.DecodeImport(line, now)
		if err != nil {
			ans.Rejected = append(ans.Rejected, rejectedLine{Line: n, Errors: lineErrors(err)})
			continue
		}
		events = append(events, ev)
	}
	if strict && len(ans.Rejected) > 0 {
		var fields []event.FieldError
		for _, l := range ans.Rejected {
			for _, f := range l.Errors {
				fields = append(fields, event.FieldError{Path: "line " + strconv.Itoa(l.Line) + "." + f.Path, Reason: f.Reason})
			}
		}
		e := errorf(http.StatusBadRequest, "VALIDATION_ERROR", "%d of the lines are not events; nothing was imported", len(ans.Rejected))
		e.Details = fields
		return e
	}
	if len(events) > 0 {
		added, e := s.accept(r, events)
		if e != nil {
			return e
		}
		for _, ok := range added {
			if ok {
				ans.Accepted++
			}
		}
		ans.Duplicates = len(events) - ans.Accepted
	}
	writeData(w, http.StatusOK, ans)
	return nil
}

// lineErrors are the reasons a line is not an event.
func lineErrors(err error) []event.FieldError {
	var ve *event.ValidationError
	if errors.As(err, &ve) {
		return ve.Fields
	}
	return []event.FieldError{{Path: "body", Reason: err.Error()}}
}
