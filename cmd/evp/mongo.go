package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/evp-dev/evp/internal/store/mongostore"
)

// exitNotMongos is the exit code of `evp mongo init` when MONGO_URI is not a mongos: the
// command did nothing because there is no sharded cluster to set up.
const exitNotMongos = 3

// mongo runs `evp mongo init`: create the event store's collections and indexes, then enable
// sharding on MONGO_DATABASE and shard its events collection on {userId: "hashed"}. It exits
// 0 when done (also when already done), 3 when the server is not a mongos, 1 on any other
// failure and 2 on bad usage.
func mongo(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprint(stderr, "Usage: evp mongo init [flags]\n\nSets up MONGO_URI's database: indexes, then sharding of events on hashed userId (needs a mongos).\nExit codes: 0 done, 1 failed, 2 bad usage, 3 not a mongos (indexes created, nothing sharded).\n")
		return 2
	}
	cfg, rest, code, ok := load("evp mongo init", args[1:], getenv, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "evp: unexpected arguments %q; see evp mongo init --help\n", rest)
		return 2
	}
	if cfg.MongoURI == "" {
		fmt.Fprintln(stderr, "evp: MONGO_URI is not set: evp mongo init sets up a MongoDB event store; the embedded store needs no setup")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := mongostore.Open(ctx, mongostore.Options{URI: cfg.MongoURI, Database: cfg.MongoDB, RetentionDays: cfg.RetentionDays})
	if err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 1
	}
	defer st.Close()
	fmt.Fprintf(stdout, "Collections and indexes of database %q are in place.\n", cfg.MongoDB)
	err = mongostore.ShardEvents(ctx, st.Client(), cfg.MongoDB)
	if errors.Is(err, mongostore.ErrNotMongos) {
		fmt.Fprintf(stderr, "evp: not sharded: %v.\n", err)
		return exitNotMongos
	}
	if err != nil {
		fmt.Fprintf(stderr, "evp: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Sharding enabled on %q; %s.%s is sharded on {userId: \"hashed\"}.\n", cfg.MongoDB, cfg.MongoDB, mongostore.EventsCollection)
	return 0
}
