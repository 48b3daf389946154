// Command evp is the event pipeline: `evp` runs everything in one process on embedded
// backends; subcommands run single roles and operator tasks. See `evp help`.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/evp-dev/evp/internal/app"
	"github.com/evp-dev/evp/internal/config"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const commands = `Usage: evp [command] [flags]

Commands:
  (none), run        API and workers in one process (embedded backends unless URLs are set)
  api                HTTP API only (needs a shared buffer: REDIS_URL)
  worker             workers only (needs a shared buffer: REDIS_URL)
  apikey create      create an API key and print it once (--name, --expires-in, --ingest-only, --allowed-origins)
  apikey list        list API keys (never the keys themselves)
  apikey revoke ID   revoke an API key
  user add           invite someone by email with a role (--email, --role); the first ADMIN before going public
  user list          list users, roles and status
  user forget ID     delete every event of one user (an erasure request), analytics included
  migrate            apply database migrations and exit
  mongo init         MongoDB (MONGO_URI): create indexes, shard events on hashed userId (mongos only; exit 3 otherwise)
  healthcheck        exit 0 when the evp on PORT answers /api/live (for container health checks)
  loadgen            drive load at a running evp and report throughput and latency
  export             download stored events from a running evp as NDJSON or CSV (--url, --key, filters, -o FILE)
  import FILE        load NDJSON as evp export writes it into a running evp (--url, --key, --strict; - reads stdin)
  version            print the version

Run "evp <command> --help" for the settings a command reads.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 success, 1 failure while
// running, 2 bad usage or configuration.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help":
		fmt.Fprint(stdout, commands)
		return 0
	case "version":
		fmt.Fprintf(stdout, "evp %s\n", version)
		return 0
	case "run", "all":
		return serve(app.RoleAll, args, getenv, stdout, stderr)
	case "api":
		return serve(app.RoleAPI, args, getenv, stdout, stderr)
	case "worker":
		return serve(app.RoleWorker, args, getenv, stdout, stderr)
	case "apikey":
		return apikey(args, getenv, stdout, stderr)
	case "user":
		return user(args, getenv, stdout, stderr)
	case "mongo":
		return mongo(args, getenv, stdout, stderr)
	case "migrate":
		return migrate(args, getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(args, getenv, stdout, stderr)
	case "loadgen":
		return loadgen(args, stdout, stderr)
	case "export":
		return export(args, getenv, stdout, stderr)
	case "import":
		return importCmd(args, getenv, stdout, stderr)
	case "noop-server":
		return noopServer(args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "evp: unknown command %q\n\n%s", cmd, commands)
	return 2
}

// load reads the configuration and reports a bad value; ok is false when the command must
// end with code.
func load(name string, args []string, getenv func(string) string, stdout, stderr io.Writer, extra func(*flag.FlagSet)) (cfg *config.Config, rest []string, code int, ok bool) {
	// The flag set prints the settings on --help; evp's own help is its commands, then the
	// settings once.
	var flagOut bytes.Buffer
	cfg, rest, err := config.Load(name, args, getenv, &flagOut, extra)
	if errors.Is(err, flag.ErrHelp) && name == "evp" {
		fmt.Fprint(stdout, commands+"\n")
		config.PrintSettings(stdout)
		return nil, nil, 0, false
	}
	_, _ = stdout.Write(flagOut.Bytes())
	if errors.Is(err, flag.ErrHelp) {
		return nil, nil, 0, false
	}
	if err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return nil, nil, 2, false
	}
	return cfg, rest, 0, true
}

func serve(role app.Role, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	name := "evp"
	if role != app.RoleAll {
		name = "evp " + string(role)
	}
	cfg, rest, code, ok := load(name, args, getenv, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "evp: unexpected arguments %q; see evp help\n", rest)
		return 2
	}
	if err := app.CheckRole(role, cfg); err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 2
	}
	if err := cfg.PrepareDataDir(); err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 2
	}
	log := app.NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, role, cfg, app.Options{Version: version, Log: log}); err != nil {
		var ce *config.Error
		var busy *app.PortInUseError
		if errors.As(err, &ce) || errors.As(err, &busy) {
			fmt.Fprintf(stderr, "evp: %v\n", err)
			return 2
		}
		log.Error("evp failed", "err", err)
		return 1
	}
	return 0
}
