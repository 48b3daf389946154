package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evp-dev/evp/internal/testutil/ferret"
)

func TestMongoInit(t *testing.T) {
	srv := ferret.Start(t)
	env := map[string]string{"MONGO_URI": srv.URI(), "MONGO_DATABASE": "evpinit", "EVP_DATA_DIR": t.TempDir()}
	getenv := func(k string) string { return env[k] }
	var out, errOut bytes.Buffer
	// FerretDB is not a mongos: the indexes are created, nothing is sharded, exit 3.
	if code := run([]string{"mongo", "init"}, getenv, &out, &errOut); code != exitNotMongos {
		t.Fatalf("evp mongo init on a non-mongos = %d, want %d; stdout %q stderr %q", code, exitNotMongos, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "not a mongos") || !strings.Contains(out.String(), "indexes") {
		t.Fatalf("stdout %q stderr %q: want the indexes reported and the missing mongos named", out.String(), errOut.String())
	}
	if code := run([]string{"mongo"}, getenv, &out, &errOut); code != 2 {
		t.Fatalf("evp mongo = %d, want 2", code)
	}
	delete(env, "MONGO_URI")
	errOut.Reset()
	if code := run([]string{"mongo", "init"}, getenv, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "MONGO_URI") {
		t.Fatalf("evp mongo init without MONGO_URI = %d, %q; want 2 naming MONGO_URI", code, errOut.String())
	}
}

// evp migrate with MONGO_URI creates the MongoDB indexes instead of an embedded events file.
func TestMigrateMongo(t *testing.T) {
	srv := ferret.Start(t)
	dir := t.TempDir()
	env := map[string]string{"MONGO_URI": srv.URI(), "MONGO_DATABASE": "evpmigrate", "EVP_DATA_DIR": dir}
	code, out, stderr := runCmd(t, env, "migrate")
	if code != 0 || !strings.Contains(out, `MongoDB: indexes of database "evpmigrate"`) {
		t.Fatalf("evp migrate with MONGO_URI: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "events.db")); !os.IsNotExist(err) {
		t.Fatalf("evp migrate with MONGO_URI made an embedded events.db (%v)", err)
	}
}
