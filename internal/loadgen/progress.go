package loadgen

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startProgress writes a progress line every ProgressInterval until the returned function is
// called. With poll, it also reads the store count once a second while sending, to show how
// far the store lags behind.
func (r *runner) startProgress(ctx context.Context, started time.Time, baseline int64, poll bool) (stop func()) {
	out := r.cfg.Progress
	pollCtx, cancelPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if poll {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-pollCtx.Done():
					return
				case <-t.C:
					if r.sending.Load() {
						if n, err := r.storeCount(pollCtx); err == nil {
							r.stored.Store(n)
							r.samples.add(time.Now(), n)
						}
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	if out != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(r.cfg.ProgressInterval)
			defer t.Stop()
			last := time.Now()
			var lastReq, lastEv int64
			for {
				select {
				case <-done:
					if r.cfg.ProgressTTY {
						_, _ = io.WriteString(out, "\n")
					}
					return
				case now := <-t.C:
					req, ev := r.reqSent.Load(), r.evSent.Load()
					dt := now.Sub(last).Seconds()
					line := r.progressLine(now.Sub(started), float64(req-lastReq)/dt, float64(ev-lastEv)/dt, baseline, poll)
					last, lastReq, lastEv = now, req, ev
					if r.cfg.ProgressTTY {
						// A line that wraps cannot be rewritten in place.
						if w := r.cfg.ProgressWidth; w > 1 && len(line) >= w {
							line = line[:w-1]
						}
						_, _ = io.WriteString(out, "\r"+line+"\x1b[K")
					} else {
						_, _ = io.WriteString(out, line+"\n")
					}
				}
			}
		}()
	}
	return func() {
		cancelPoll()
		close(done)
		wg.Wait()
	}
}

func (r *runner) progressLine(elapsed time.Duration, reqRate, evRate float64, baseline int64, poll bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.0fs", elapsed.Seconds())
	if target := r.waiting.Load(); target > 0 {
		b.WriteString(" waiting for the store")
	} else {
		fmt.Fprintf(&b, " %s req/s %s ev/s", num(reqRate), num(evRate))
	}
	accepted := r.evAccepted.Load()
	fmt.Fprintf(&b, " | accepted %s dup %s", inum(accepted), inum(r.evDup.Load()))
	var errs []string
	for i := range r.byStatus {
		if i >= 200 && i < 300 {
			continue
		}
		if n := r.byStatus[i].Load(); n > 0 {
			k := strconv.Itoa(i)
			if i == 0 {
				k = "transport"
			}
			errs = append(errs, k+":"+inum(n))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, " errors %s", strings.Join(errs, " "))
	} else {
		b.WriteString(" errors 0")
	}
	if m := r.missedReq.Load(); m > 0 {
		fmt.Fprintf(&b, " missed %s", inum(m))
	}
	if l := r.interval.Snapshot(); l.Count > 0 {
		fmt.Fprintf(&b, " | p50 %s p99 %s ms", ms(l.P50), ms(l.P99))
	}
	if poll {
		if s := r.stored.Load(); s >= 0 {
			stored := s - baseline
			fmt.Fprintf(&b, " | stored %s lag %s", inum(stored), inum(max(0, accepted-stored)))
		}
	}
	if r.sampler != nil {
		cores, rss := r.sampler.live()
		fmt.Fprintf(&b, " | server %.2f cores %.0f MB", cores, float64(rss)/(1<<20))
	}
	return b.String()
}
