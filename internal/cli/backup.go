package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// cmdBackup copies the data directory, and on SQLite the database, into a
// new directory that attest serve can open.
func cmdBackup(e *env, args []string) int {
	var sf storeFlags
	var out, output string
	fs := newFlags(e, "backup")
	fs.store(&sf)
	fs.StringVar(&out, "out", "", "new or empty directory to write the backup into (required)")
	fs.StringVar(&output, "output", "text", "output: text or json")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	if out == "" {
		return usageErr(e, "--out is required")
	}
	if output != "text" && output != "json" {
		return usageErr(e, "--output must be text or json")
	}
	ctx := context.Background()
	log, err := sf.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	in, err := sf.open(ctx, log, "")
	if err != nil {
		return failErr(e, err)
	}
	defer in.Close()
	if fi, err := os.Stat(filepath.Join(sf.dataDir, "attest.db")); err == nil && sf.databaseURL == "" {
		fmt.Fprintf(e.stderr, "attest: backing up %s (a %.1f MB database) into %s\n", sf.dataDir,
			float64(fi.Size())/1e6, out)
	}
	rep, err := in.Backup(ctx, out, hostActor(), hostDecorate("backup"))
	if err != nil {
		return fail(e, "%v", err)
	}
	if output == "json" {
		json.NewEncoder(e.stdout).Encode(map[string]any{"dir": rep.Dir, "files": rep.Files, "bytes": rep.Bytes,
			"database": rep.Database, "elapsed_ms": rep.Elapsed.Milliseconds()})
		return exitOK
	}
	fmt.Fprintf(e.stdout, "backed up into %s: %d files, %d bytes, in %s\n", rep.Dir, rep.Files, rep.Bytes,
		rep.Elapsed.Round(time.Millisecond))
	if !rep.Database {
		fmt.Fprintln(e.stdout, "the PostgreSQL database is not in it: back it up with pg_dump, after this, so that "+
			"the copy's signed checkpoints are never ahead of its log")
	}
	return exitOK
}
