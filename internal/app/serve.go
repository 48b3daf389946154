package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/httpapi"
)

// service is one long-running part of a process: Run works until ctx ends, then stops
// and returns. A service that fails returns its error, which stops the process.
type service interface {
	Run(ctx context.Context) error
}

// serviceFunc is a service made of a function.
type serviceFunc func(ctx context.Context) error

// Run implements service.
func (f serviceFunc) Run(ctx context.Context) error { return f(ctx) }

// serve runs api, workers (nil: none) and loops until ctx ends or one of them fails, then
// stops them in this order, within timeout of the moment the stop begins:
//
//  1. api: readiness turns false, the HTTP server lets the requests in flight finish, and
//     sign-in codes still being mailed are sent. The workers and loops run on meanwhile,
//     on a context of their own, so that those requests finish against a working pipeline.
//  2. workers and loops: the workers finish their batches in flight; workers still busy
//     at the deadline are left, and their entries stay in the buffer to be delivered
//     again. The background loops stop, the usage flusher once it has recorded API key
//     usage a last time.
//
// The caller closes the backends after serve returns. serve returns the first error of a
// service.
func serve(ctx context.Context, timeout time.Duration, log *slog.Logger, api, workers service, loops []service) error {
	g, stopping := errgroup.WithContext(ctx)
	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	for _, s := range loops {
		g.Go(func() error { return s.Run(work) })
	}
	if workers != nil {
		grace, cancelGrace := graceAfter(stopping, timeout)
		defer cancelGrace()
		g.Go(func() error {
			done, err := runWithin(work, grace, workers)
			if !done {
				log.Warn("workers did not finish in time; their batches stay in the buffer and are delivered again")
			}
			return err
		})
	}
	g.Go(func() error {
		defer stopWork()
		return api.Run(stopping)
	})
	return g.Wait()
}

// graceAfter returns a context that ends timeout after ctx ends.
func graceAfter(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	grace, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(timeout, cancel) })
	return grace, func() { stop(); cancel() }
}

// runWithin runs s on ctx and returns true and s's error once s returns, or false when
// grace ends first: then s is left to finish on its own.
func runWithin(ctx, grace context.Context, s service) (done bool, err error) {
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	select {
	case err := <-ran:
		return true, err
	case <-grace.Done():
		return false, nil
	}
}

// apiServer serves the HTTP API on ln. Once its context ends it turns readiness off, lets
// the requests in flight finish and waits for the sign-in codes still being mailed, all
// within timeout.
type apiServer struct {
	srv     *httpapi.Server
	hs      *http.Server
	ln      net.Listener
	mail    *accounts.Service // nil when this process signs nobody in
	timeout time.Duration
	log     *slog.Logger
	started func(addr string) // called once the API accepts requests
}

// newHTTPServer is the HTTP server of the API, with its time limits.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Run implements service: it returns an error when the server stopped serving by itself.
func (a *apiServer) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- a.hs.Serve(a.ln) }()
	a.srv.SetReady(true)
	a.started(a.ln.Addr().String())
	var err error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", "timeout", a.timeout.String())
	case serr := <-served:
		err = fmt.Errorf("http server: %w", serr)
	}
	deadline, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	a.srv.SetReady(false)
	if serr := a.hs.Shutdown(deadline); serr != nil {
		a.log.Warn("http shutdown incomplete", "err", serr)
		_ = a.hs.Close()
	}
	if a.mail != nil {
		mailed := make(chan struct{})
		go func() { a.mail.WaitForMail(); close(mailed) }()
		select {
		case <-mailed:
		case <-deadline.Done():
			a.log.Warn("sign-in codes still being sent at shutdown were abandoned")
		}
	}
	return err
}

// pprofServer serves Go's profiles on their own listener, never on the API's port. A
// listener that fails is logged; the process runs on without it.
type pprofServer struct {
	addr string
	log  *slog.Logger
}

// Run implements service.
func (p pprofServer) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	hs := &http.Server{Addr: p.addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { _ = hs.Close() })
	defer stop()
	p.log.Info("pprof listening", "addr", p.addr)
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		p.log.Warn("pprof listener stopped", "err", err)
	}
	return nil
}
