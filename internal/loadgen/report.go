package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run; `evp loadgen --json` prints it as is.
type Report struct {
	RunID        string  `json:"runId"`
	URL          string  `json:"url"`
	Endpoint     string  `json:"endpoint"`
	Mode         string  `json:"mode"` // "open" (fixed rate) or "closed" (back to back)
	TargetRate   float64 `json:"targetRate,omitempty"`
	MaxInflight  int     `json:"maxInflight,omitempty"`
	Connections  int     `json:"connections"` // workers, each with its own connection
	Concurrency  int     `json:"concurrency,omitempty"`
	Batch        int     `json:"batch"`
	PayloadBytes int     `json:"payloadBytes"`
	Users        int     `json:"users"`
	Sessions     int     `json:"sessions"`
	DupRatio     float64 `json:"dupRatio"`
	Gzip         bool    `json:"gzip"`

	SendSeconds float64 `json:"sendSeconds"` // first request start to last answer

	Requests struct {
		Sent   int64 `json:"sent"`
		OK     int64 `json:"ok"`     // 2xx
		Failed int64 `json:"failed"` // non-2xx or no answer
		Missed int64 `json:"missed"` // open loop: scheduled but not sent, MaxInflight being busy
	} `json:"requests"`
	Events struct {
		Sent           int64 `json:"sent"`
		Accepted       int64 `json:"accepted"`       // new events the server took (202)
		Duplicates     int64 `json:"duplicates"`     // events the server reported as duplicates
		Rejected       int64 `json:"rejected"`       // events of requests answered with an error (not 2xx)
		Unanswered     int64 `json:"unanswered"`     // events of requests without an answer (refused, reset, timed out)
		Missed         int64 `json:"missed"`         // events of missed requests
		DuplicatesSent int64 `json:"duplicatesSent"` // events sent with a reused eventId
	} `json:"events"`
	RequestsByStatus map[string]int64 `json:"requestsByStatus"` // "transport" for no answer
	ErrorsByCode     map[string]int64 `json:"errorsByCode"`     // failed requests by error.code

	Latency     Latencies `json:"latencyMs"`
	LatencyFrom string    `json:"latencyFrom"` // "scheduled start" (open loop) or "request start"
	// ScheduleLag (open loop) is how late the generator handed each start to a worker: the
	// part of the latency that is the generator's, when it lacks CPU.
	ScheduleLag *Latencies `json:"scheduleLagMs,omitempty"`

	Throughput struct {
		RequestsPerSec       float64 `json:"requestsPerSec"`
		SentEventsPerSec     float64 `json:"sentEventsPerSec"`
		AcceptedEventsPerSec float64 `json:"acceptedEventsPerSec"`
	} `json:"throughput"`

	EndToEnd struct {
		Measured     bool    `json:"measured"`
		Reached      bool    `json:"reached"`      // the store held every accepted event in time
		StoredEvents int64   `json:"storedEvents"` // growth of the store count during the run
		EventsPerSec float64 `json:"eventsPerSec"` // accepted / (first send to all stored)
		LagSeconds   float64 `json:"lagSeconds"`   // end of sending to all stored
		// The store's events/s in the first minute of the run and in the last minute before
		// it held them all; set when storing took two minutes or more.
		FirstMinuteEventsPerSec float64 `json:"firstMinuteEventsPerSec,omitempty"`
		LastMinuteEventsPerSec  float64 `json:"lastMinuteEventsPerSec,omitempty"`
		// Shortfall is set when the server's buffer emptied with fewer events stored than it
		// accepted: EventsPerSec and LagSeconds then count what was stored.
		Shortfall int64 `json:"shortfall,omitempty"`
		// RepeatsStoredOnce is set when the store holds that many fewer events than were
		// accepted, no more than the repeated eventIds the server accepted again after its
		// dedup window dropped them: each eventId is stored once, so the run is complete.
		RepeatsStoredOnce int64  `json:"repeatsStoredOnce,omitempty"`
		Error             string `json:"error,omitempty"`
	} `json:"endToEnd"`

	Server struct {
		Measured        bool    `json:"measured"`
		PID             int     `json:"pid,omitempty"`
		CPUSeconds      float64 `json:"cpuSeconds"` // first send until the store caught up (or sending ended)
		AvgCores        float64 `json:"avgCores"`
		SendCPUSeconds  float64 `json:"sendCpuSeconds"` // while sending
		SendAvgCores    float64 `json:"sendAvgCores"`
		PeakRSSMB       float64 `json:"peakRssMB"`       // VmHWM: peak since the server started
		MaxSampledRSSMB float64 `json:"maxSampledRssMB"` // largest VmRSS sampled during the run
		Error           string  `json:"error,omitempty"`
	} `json:"server"`

	Loadgen struct { // while sending
		CPUSeconds float64 `json:"cpuSeconds"`
		AvgCores   float64 `json:"avgCores"`
	} `json:"loadgen"`
}

// fill copies the run's counters into rep.
func (r *runner) fill(rep *Report, first, sendEnd time.Time) {
	rep.SendSeconds = max(0, sendEnd.Sub(first).Seconds())
	rep.Connections = r.cfg.Concurrency
	if r.cfg.open() {
		rep.Connections = r.workers
	}
	rep.Requests.Sent = r.reqSent.Load()
	rep.Requests.OK = r.reqOK.Load()
	rep.Requests.Failed = r.reqFailed.Load()
	rep.Requests.Missed = r.missedReq.Load()
	rep.Events.Sent = r.evSent.Load()
	rep.Events.Accepted = r.evAccepted.Load()
	rep.Events.Duplicates = r.evDup.Load()
	rep.Events.Rejected = r.evRejected.Load()
	rep.Events.Unanswered = r.evUnanswered.Load()
	rep.Events.Missed = r.missedEv.Load()
	rep.Events.DuplicatesSent = r.evDupGenerated.Load()
	rep.RequestsByStatus = r.statusCounts()
	r.codesMu.Lock()
	rep.ErrorsByCode = maps.Clone(r.codes)
	r.codesMu.Unlock()
	rep.Latency = r.total.Latencies()
	rep.LatencyFrom = "request start"
	if r.cfg.open() {
		rep.LatencyFrom = "scheduled start"
		l := r.schedLag.Latencies()
		rep.ScheduleLag = &l
	}
	if s := rep.SendSeconds; s > 0 {
		rep.Throughput.RequestsPerSec = float64(rep.Requests.Sent) / s
		rep.Throughput.SentEventsPerSec = float64(rep.Events.Sent) / s
		rep.Throughput.AcceptedEventsPerSec = float64(rep.Events.Accepted) / s
	}
}

func (r *runner) statusCounts() map[string]int64 {
	m := map[string]int64{}
	for i := range r.byStatus {
		if n := r.byStatus[i].Load(); n > 0 {
			k := strconv.Itoa(i)
			if i == 0 {
				k = "transport"
			}
			m[k] = n
		}
	}
	return m
}

// WriteText writes the report as a table for people.
func (rep *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(tw, "evp loadgen report (run %s)\n", rep.RunID)
	row("target", "%s", rep.Endpoint)
	load := fmt.Sprintf("closed loop, %d connections", rep.Concurrency)
	if rep.Mode == "open" {
		load = fmt.Sprintf("open loop at %s events/s (%s requests/s), max in flight %d, %d connections opened",
			num(rep.TargetRate), num(rep.TargetRate/float64(rep.Batch)), rep.MaxInflight, rep.Connections)
	}
	gz := "off"
	if rep.Gzip {
		gz = "on"
	}
	row("load", "%s; %d event(s) per request, payload %d B, gzip %s, dup ratio %g, %d users, %d sessions",
		load, rep.Batch, rep.PayloadBytes, gz, rep.DupRatio, rep.Users, rep.Sessions)
	row("sending", "%.1f s", rep.SendSeconds)
	row("requests", "sent %s, ok %s, failed %s, missed %s", inum(rep.Requests.Sent), inum(rep.Requests.OK),
		inum(rep.Requests.Failed), inum(rep.Requests.Missed))
	row("events", "sent %s, accepted %s, duplicates %s (%s sent with a reused id), rejected %s, unanswered %s, missed %s",
		inum(rep.Events.Sent), inum(rep.Events.Accepted), inum(rep.Events.Duplicates), inum(rep.Events.DuplicatesSent),
		inum(rep.Events.Rejected), inum(rep.Events.Unanswered), inum(rep.Events.Missed))
	row("requests by status", "%s", countList(rep.RequestsByStatus))
	if len(rep.ErrorsByCode) > 0 {
		row("errors by code", "%s", countList(rep.ErrorsByCode))
	}
	l := rep.Latency
	row("latency ms", "p50 %s, p90 %s, p99 %s, p99.9 %s, max %s (from %s)",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), rep.LatencyFrom)
	if sl := rep.ScheduleLag; sl != nil {
		row("schedule lag ms", "p50 %s, p99 %s, max %s (how late the generator itself started requests)", ms(sl.P50), ms(sl.P99), ms(sl.Max))
	}
	row("throughput", "%s requests/s, %s events/s sent, %s events/s accepted",
		num(rep.Throughput.RequestsPerSec), num(rep.Throughput.SentEventsPerSec), num(rep.Throughput.AcceptedEventsPerSec))
	e := rep.EndToEnd
	switch {
	case !e.Measured:
		msg := "not measured (--wait-processed=false)"
		if e.Error != "" {
			msg = "not measured: " + e.Error
		}
		row("end to end", "%s", msg)
	case e.Reached && e.RepeatsStoredOnce > 0:
		row("end to end", "%s events/s (first send to all %s accepted events stored), processing lag %.2f s",
			num(e.EventsPerSec), inum(rep.Events.Accepted-e.RepeatsStoredOnce), e.LagSeconds)
		row("", "%s repeated eventIds were accepted again (the server's dedup window, EVP_DEDUP_WINDOW and "+
			"EVP_DEDUP_MAX_IDS, no longer held them) and stored once, as the store keeps one event per eventId",
			inum(e.RepeatsStoredOnce))
	case e.Reached:
		row("end to end", "%s events/s (first send to all %s accepted events stored), processing lag %.2f s",
			num(e.EventsPerSec), inum(rep.Events.Accepted), e.LagSeconds)
		if e.FirstMinuteEventsPerSec > 0 {
			row("", "stored %s events/s in the first minute, %s in the last", num(e.FirstMinuteEventsPerSec), num(e.LastMinuteEventsPerSec))
		}
	case e.Shortfall > 0:
		row("end to end", "INCOMPLETE: %s", e.Error)
		row("", "%s events/s (first send to the last of %s events stored), processing lag %.2f s",
			num(e.EventsPerSec), inum(e.StoredEvents), e.LagSeconds)
	default:
		row("end to end", "NOT REACHED: %s", e.Error)
	}
	s := rep.Server
	switch {
	case s.Measured && !rep.EndToEnd.Measured:
		row("server", "pid %d: %.1f CPU s, %.2f cores on average while sending; RSS peak %.1f MB since the server started, %.1f MB largest sampled in this run",
			s.PID, s.SendCPUSeconds, s.SendAvgCores, s.PeakRSSMB, s.MaxSampledRSSMB)
	case s.Measured:
		row("server", "pid %d: %.1f CPU s, %.2f cores on average while sending; %.1f CPU s, %.2f cores until stored; RSS peak %.1f MB since the server started, %.1f MB largest sampled in this run",
			s.PID, s.SendCPUSeconds, s.SendAvgCores, s.CPUSeconds, s.AvgCores, s.PeakRSSMB, s.MaxSampledRSSMB)
	default:
		row("server", "not measured: %s", s.Error)
	}
	if s.Measured && s.Error != "" {
		row("", "sampling stopped early (the figures cover the time before): %s", s.Error)
	}
	row("load generator", "%.1f CPU s, %.2f cores on average while sending", rep.Loadgen.CPUSeconds, rep.Loadgen.AvgCores)
	return tw.Flush()
}

func countList(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + inum(m[k])
	}
	return strings.Join(parts, ", ")
}

// inum formats n with thousands separators.
func inum(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// num formats a rate: thousands separators, no decimals from 100 up.
func num(f float64) string {
	if f >= 100 || f <= -100 {
		return inum(int64(f + 0.5))
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

func ms(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}
