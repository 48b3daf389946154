// Package loadgen drives realistic event traffic at an evp server and measures it: request
// latency (coordinated-omission safe in open loop), accepted and duplicate events, errors by
// status and code, end-to-end throughput until the store holds every accepted event, and
// the server's CPU and memory from /proc. `evp loadgen` is its command.
package loadgen

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/event"
)

// Config is one load run.
type Config struct {
	URL string // base URL of the server, like http://localhost:3001
	Key string // API key sent as x-api-key

	// Rate > 0 runs an open loop: request starts are scheduled at Rate/Batch per second and
	// latency is measured from each scheduled start. Rate == 0 runs a closed loop of
	// Concurrency workers sending back to back.
	Rate        float64 // events per second
	Concurrency int
	MaxInflight int // open loop: most requests outstanding; scheduled starts beyond it are missed

	Duration time.Duration // how long to send; 0 = until Count events were sent
	Count    int64         // events to send; 0 = until Duration is over

	Batch        int // events per request; 1 uses POST /api/v1/events, more /api/v1/events/batch
	Users        int
	Sessions     int
	PayloadBytes int
	DupRatio     float64
	Gzip         bool
	Segment      bool          // send Segment's format to /v1/batch (/v1/track for --batch 1)
	Spread       time.Duration // stamp events at random times over this much before now (a backfill)

	WaitProcessed bool          // after sending, wait until the store holds every accepted event
	WaitTimeout   time.Duration // longest such wait
	PID           int           // server process to sample; 0 = find it from the URL's port when local

	RequestTimeout   time.Duration
	NetHTTP          bool      // send with net/http instead of the lean built-in HTTP/1.1 client
	Progress         io.Writer // live progress; nil for none
	ProgressTTY      bool      // rewrite the progress line in place
	ProgressWidth    int       // with ProgressTTY: cut lines to this many characters (0: no cut)
	ProgressInterval time.Duration
	RunID            string // part of every eventId; random when empty
	Seed             uint64 // random source of event contents; time-based when 0
}

// MaxPayloadBytes is the largest --payload-bytes: above evp's largest body setting's
// default, so that bodies at or over the limit can be sent.
const MaxPayloadBytes = 8 << 20

// Defaults returns the settings `evp loadgen` starts from.
func Defaults() Config {
	return Config{
		URL: "http://localhost:3001", Concurrency: 64, MaxInflight: 1024, Duration: 60 * time.Second,
		Batch: 100, Users: 10_000, Sessions: 50_000, PayloadBytes: 200, DupRatio: 0.01,
		WaitProcessed: true, WaitTimeout: 120 * time.Second, RequestTimeout: 30 * time.Second,
		ProgressInterval: time.Second,
	}
}

// Validate reports the first bad setting, naming its flag.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("invalid --url=%q: must be an http(s) URL like http://localhost:3001", c.URL)
	case strings.TrimSpace(c.Key) == "":
		return fmt.Errorf("--key is required (create one with: evp apikey create --name loadgen)")
	case c.Rate < 0:
		return fmt.Errorf("invalid --rate=%v: must be positive (events per second)", c.Rate)
	case c.Rate == 0 && c.Concurrency < 1:
		return fmt.Errorf("invalid --concurrency=%d: must be at least 1", c.Concurrency)
	case c.Rate > 0 && c.MaxInflight < 1:
		return fmt.Errorf("invalid --max-inflight=%d: must be at least 1", c.MaxInflight)
	case c.Duration < 0:
		return fmt.Errorf("invalid --duration=%s: must be positive", c.Duration)
	case c.Count < 0:
		return fmt.Errorf("invalid --count=%d: must be positive", c.Count)
	case c.Duration == 0 && c.Count == 0:
		return fmt.Errorf("give --duration or --count")
	case c.Batch < 1 || c.Batch > event.MaxBatch:
		return fmt.Errorf("invalid --batch=%d: must be from 1 to %d", c.Batch, event.MaxBatch)
	case c.Users < 1:
		return fmt.Errorf("invalid --users=%d: must be at least 1", c.Users)
	case c.Sessions < 1:
		return fmt.Errorf("invalid --sessions=%d: must be at least 1", c.Sessions)
	case c.PayloadBytes < 0 || c.PayloadBytes > MaxPayloadBytes:
		return fmt.Errorf("invalid --payload-bytes=%d: must be from 0 to %d", c.PayloadBytes, MaxPayloadBytes)
	case c.DupRatio < 0 || c.DupRatio > 1:
		return fmt.Errorf("invalid --dup-ratio=%v: must be from 0 to 1", c.DupRatio)
	case c.WaitProcessed && c.WaitTimeout <= 0:
		return fmt.Errorf("invalid --wait-timeout=%s: must be positive", c.WaitTimeout)
	case c.PID < 0:
		return fmt.Errorf("invalid --pid=%d", c.PID)
	case c.Spread < 0:
		return fmt.Errorf("invalid --spread=%s: must be 0 or more", c.Spread)
	}
	return nil
}

func (c *Config) open() bool { return c.Rate > 0 }

func (c *Config) endpoint() string {
	base := strings.TrimRight(c.URL, "/")
	if c.Segment {
		if c.Batch == 1 {
			return base + "/v1/track"
		}
		return base + "/v1/batch"
	}
	if c.Batch == 1 {
		return base + "/api/v1/events"
	}
	return base + "/api/v1/events/batch"
}
