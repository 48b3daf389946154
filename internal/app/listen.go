package app

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/evp-dev/evp/internal/config"
)

// PortInUseError is a listen address that another process holds; evp exits with code 2 on
// it, as on a bad setting.
type PortInUseError struct {
	Host string
	Port int
	Err  error // from net.Listen
}

func (e *PortInUseError) Error() string {
	other := e.Port + 1
	if other > 65535 {
		other = e.Port - 1
	}
	return fmt.Sprintf("port %d is in use (on %s) by another program, perhaps another evp: stop it, or pick another port: PORT=%d make run, or ./bin/evp --port %d",
		e.Port, e.Host, other, other)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// listenError explains why the HTTP listener on cfg.Addr() could not open: a
// *PortInUseError when another process holds the port, otherwise a *config.Error naming PORT.
func listenError(cfg *config.Config, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &PortInUseError{Host: cfg.Host, Port: cfg.Port, Err: err}
	}
	return &config.Error{Setting: "PORT", Value: cfg.Addr(), Reason: fmt.Sprintf("cannot listen: %v", err)}
}
