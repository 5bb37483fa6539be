package main

import (
	"bytes"
	"database/sql"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/attest/attest/internal/store/storetest"
)

// commandLine is a command, such as "tenant create", and its arguments.
type commandLine struct {
	cmd  string
	args []string
}

// oneShotCommands are the commands that need an initialised store, each
// with arguments that would succeed on one.
func oneShotCommands(t *testing.T) []commandLine {
	events := writeFile(t, "events.ndjson", string(ndjson(t, events(2, "svc", "record.read"))))
	return []commandLine{
		{"tenant list", nil},
		{"tenant create", []string{"acme"}},
		{"apikey list", nil},
		{"apikey create", []string{"--role", "operator"}},
		{"import", []string{"--format", "ndjson", events}},
		{"audit query", nil},
		{"audit public-key", nil},
		{"verify", nil},
	}
}

// copyDir copies the regular files of the directory tree src into a new
// temporary directory of mode 0700 and returns it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.Chmod(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// snapshot is what a data directory holds: each file's contents, except
// SQLite's own write-ahead log and shared-memory files.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(path, "-wal") || strings.HasSuffix(path, "-shm") {
			if fi, err := d.Info(); err == nil && strings.HasSuffix(path, "-wal") && fi.Size() != 0 {
				t.Errorf("%s holds %d bytes: something was written", path, fi.Size())
			}
			return nil
		}
		b, err := os.ReadFile(path)
		files[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func sqliteExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestOneShotCommandsRefuseUnfinishedStores runs every one-shot command on
// SQLite stores that attest init never finished or that were damaged since,
// and checks that each is refused and left exactly as it was.
func TestOneShotCommandsRefuseUnfinishedStores(t *testing.T) {
	t.Parallel()
	base := initDir(t)
	full, err := os.ReadFile(filepath.Join(base, "attest.db"))
	if err != nil {
		t.Fatal(err)
	}
	states := []struct {
		name  string
		spoil func(t *testing.T, db string)
		want  string
	}{
		{"empty database file", func(t *testing.T, db string) {
			os.WriteFile(db, nil, 0o600)
		}, "is empty"},
		{"truncated database file", func(t *testing.T, db string) {
			os.WriteFile(db, full[:len(full)/2], 0o600)
		}, "cannot be read as an attest database"},
		{"database without the attest schema", func(t *testing.T, db string) {
			os.Remove(db)
			sqliteExec(t, db, `CREATE TABLE notes (body TEXT)`)
		}, "has no attest schema"},
		{"no instance record", func(t *testing.T, db string) {
			sqliteExec(t, db, `DELETE FROM instance WHERE name = 'name'`)
		}, "has no instance record"},
	}
	cmds := oneShotCommands(t)
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			for _, cmd := range cmds {
				dir := copyDir(t, base)
				st.spoil(t, filepath.Join(dir, "attest.db"))
				before := snapshot(t, dir)
				r := attestCmd(t, dir, cmd.cmd, cmd.args...)
				if r.code != 1 || !strings.Contains(r.stderr, st.want) {
					t.Errorf("attest %s: exit code %d, stderr %q; want 1 and %q",
						strings.Join(r.args, " "), r.code, r.stderr, st.want)
				}
				if !sameFiles(before, snapshot(t, dir)) {
					t.Errorf("attest %s changed the data directory", strings.Join(r.args, " "))
				}
			}
		})
	}
}

// pgTables counts the tables in the schema of a storetest PostgreSQL URL.
func pgTables(t *testing.T, dbURL string) int {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1`,
		u.Query().Get("search_path")).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOneShotCommandsRefuseUnfinishedPostgres(t *testing.T) {
	t.Parallel()
	keys := initDir(t)
	cmds := oneShotCommands(t)
	withURL := func(cmd commandLine, u string) []string {
		return append(slices.Clone(cmd.args), "--database-url", u)
	}

	t.Run("fresh database", func(t *testing.T) {
		u := storetest.PostgresURL(t)
		for _, cmd := range cmds {
			r := attestCmd(t, keys, cmd.cmd, withURL(cmd, u)...)
			if r.code != 1 || !strings.Contains(r.stderr, "has no attest schema") {
				t.Errorf("attest %s: exit code %d, stderr %q; want 1 and no attest schema",
					strings.Join(r.args, " "), r.code, r.stderr)
			}
		}
		if n := pgTables(t, u); n != 0 {
			t.Errorf("the fresh schema has %d tables after the refused commands, want none", n)
		}
	})

	t.Run("no instance record", func(t *testing.T) {
		u := storetest.PostgresURL(t)
		dir := t.TempDir()
		attestCmd(t, dir, "init", "--database-url", u).want(t, 0)
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`DELETE FROM instance WHERE name = 'name'`); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			r := attestCmd(t, dir, cmd.cmd, withURL(cmd, u)...)
			if r.code != 1 || !strings.Contains(r.stderr, "has no instance record") {
				t.Errorf("attest %s: exit code %d, stderr %q; want 1 and no instance record",
					strings.Join(r.args, " "), r.code, r.stderr)
			}
		}
		var rows int
		if err := db.QueryRow(`SELECT COUNT(*) FROM instance WHERE name = 'name'`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 0 {
			t.Error("a refused command wrote the instance record")
		}
	})
}

// TestInitValidatesFlagsFirst checks that attest init refuses bad flags
// before it creates anything.
func TestInitValidatesFlagsFirst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"instance name with a space", []string{"--instance-name", "my log"}, "--instance-name"},
		{"instance name too long", []string{"--instance-name", strings.Repeat("a", 201)}, "--instance-name"},
		{"address without a port", []string{"--addr", "localhost"}, "--addr"},
		{"log format", []string{"--log-format", "xml"}, "--log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "new")
			r := attestCmd(t, dir, "init", tt.args...).want(t, 2)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not name %s", r.stderr, tt.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("refused init created %s", dir)
			}
		})
	}
}

// TestDatabaseURLPasswordStaysOut checks that a PostgreSQL password, in
// either form of connection string, reaches neither the logged
// configuration nor an error, including when the string is malformed.
func TestDatabaseURLPasswordStaysOut(t *testing.T) {
	t.Parallel()
	const pw = "hunter2"
	// Port 1 refuses connections: serve logs its configuration, then fails
	// to connect.
	tests := []struct {
		name, dsn string
		code      int
		want      string
	}{
		{"keyword=value", "host=127.0.0.1 port=1 user=attest password=" + pw + " connect_timeout=5", 1,
			`database_url="postgres://attest:REDACTED@/?connect_timeout=5&host=127.0.0.1&port=1"`},
		{"keyword=value, quoted", "host=127.0.0.1 port=1 password='" + pw + " x'", 1, "REDACTED"},
		{"URL", "postgres://attest:" + pw + "@127.0.0.1:1/attest", 1,
			"database_url=postgres://attest:REDACTED@127.0.0.1:1/attest"},
		{"URL with a password parameter", "postgres://127.0.0.1:1/attest?password=" + pw, 1, "REDACTED"},
		{"unterminated quote", "host=127.0.0.1 password='" + pw, 2, "--database-url must be"},
		{"another scheme", "mysql://attest:" + pw + "@127.0.0.1:1/attest", 2, "--database-url must be"},
		{"bad port", "postgres://attest:" + pw + "@127.0.0.1:port/attest", 2, "--database-url must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			env := []string{"ATTEST_DATABASE_URL=" + tt.dsn}
			r := attestEnv(t, env, dir, "serve", "--addr", "127.0.0.1:1").want(t, tt.code)
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Errorf("the password is in the output:\n%s%s", r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
		})
	}

	t.Run("keyword=value connects", func(t *testing.T) {
		u, err := url.Parse(storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		var kv []string
		if u.User != nil {
			kv = append(kv, "user="+u.User.Username())
		}
		kv = append(kv, "host="+u.Hostname(), "port="+u.Port(), "dbname="+strings.TrimPrefix(u.Path, "/"))
		for k, v := range u.Query() {
			kv = append(kv, k+"='"+v[0]+"'")
		}
		env := []string{"ATTEST_DATABASE_URL=" + strings.Join(kv, " ")}
		dir := t.TempDir()
		attestEnv(t, env, dir, "init").want(t, 0)
		r := attestEnv(t, env, dir, "tenant list").want(t, 0)
		if !slices.Contains(tenantNames(t, r.stdout), "operator") {
			t.Errorf("tenant list over a keyword=value connection:\n%s\nwant the operator tenant", r.stdout)
		}
	})
}

// TestSecretKeyFilesMustBePrivate checks that a key file its group or
// others may read is refused, by name and with the fix, and that a data
// directory open to them is warned about.
func TestSecretKeyFilesMustBePrivate(t *testing.T) {
	t.Parallel()
	base := initDir(t)
	// A port in use: should serve get past the check, it fails fast.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().String()
	tests := []struct {
		name string
		file string // relative to the data directory
		mode os.FileMode
		cmd  string
		args []string
	}{
		{"signing key, group-readable", "log-signing.key", 0o640, "tenant list", nil},
		{"signing key, world-readable", "log-signing.key", 0o604, "serve", []string{"--addr", port}},
		{"key-encryption key", "kek.key", 0o660, "verify", nil},
		{"key-encryption key, on import", "kek.key", 0o640, "import",
			[]string{"--format", "ndjson", writeFile(t, "one.ndjson", string(ndjson(t, events(1, "s", "a.b"))))}},
		{"self-signed TLS key", filepath.Join("tls", "key.pem"), 0o644, "serve", []string{"--addr", port}},
		{"self-signed TLS key, on init", filepath.Join("tls", "key.pem"), 0o600 | 0o040, "init", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			path := filepath.Join(dir, tt.file)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			r := attestCmd(t, dir, tt.cmd, tt.args...).want(t, 1)
			if want := "chmod 600 " + path; !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, want)
			}
		})
	}

	t.Run("--tls-key", func(t *testing.T) {
		dir := copyDir(t, base)
		cert, key := filepath.Join(dir, "tls", "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
		b, err := os.ReadFile(filepath.Join(dir, "tls", "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(key, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r := attestCmd(t, dir, "serve", "--addr", port, "--tls-cert", cert, "--tls-key", key).want(t, 1)
		if want := "chmod 600 " + key; !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not contain %q", r.stderr, want)
		}
	})

	t.Run("open data directory", func(t *testing.T) {
		dir := copyDir(t, base)
		const warning = "the data directory is open to its group or others"
		if r := attestCmd(t, dir, "tenant list").want(t, 0); strings.Contains(r.stderr, warning) {
			t.Errorf("a mode 0700 data directory was warned about: %q", r.stderr)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		r := attestCmd(t, dir, "tenant list").want(t, 0)
		if !strings.Contains(r.stderr, warning) || !strings.Contains(r.stderr, "chmod 700") {
			t.Errorf("stderr %q, want a warning about the mode 0750 data directory", r.stderr)
		}
	})
}

// TestInitAndServeKeepKeysWithTheirDatabase checks that init and serve
// refuse, untouched, a data directory whose key files and database do not
// go together: keys without a database would sign a second log, and a
// database without its keys would get new ones that match nothing in it.
func TestInitAndServeKeepKeysWithTheirDatabase(t *testing.T) {
	t.Parallel()
	base := initDir(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // the subtests run after this function returns
	cmds := []commandLine{{"init", nil}, {"serve", []string{"--addr", busy.Addr().String()}}}
	remove := func(names ...string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			for _, n := range names {
				if err := os.Remove(filepath.Join(dir, n)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	states := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  []string
	}{
		{"keys without a database", remove("attest.db"),
			[]string{"log-signing.key", "kek.key", "attest.db is missing", "second log"}},
		{"keys with an empty database", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "attest.db"), nil, 0o600)
		}, []string{"log-signing.key", "second log"}},
		{"keys with a database without the attest schema", func(t *testing.T, dir string) {
			remove("attest.db")(t, dir)
			sqliteExec(t, filepath.Join(dir, "attest.db"), `CREATE TABLE notes (body TEXT)`)
		}, []string{"log-signing.key", "second log"}},
		{"key-encryption key without a database", remove("attest.db", "log-signing.key"),
			[]string{"kek.key", "second log"}},
		{"database without the signing key", remove("log-signing.key"),
			[]string{"has no log-signing.key", "restore"}},
		{"database without the key-encryption key", remove("kek.key"),
			[]string{"has no kek.key", "restore"}},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			for _, cmd := range cmds {
				dir := copyDir(t, base)
				st.spoil(t, dir)
				before := snapshot(t, dir)
				r := attestCmd(t, dir, cmd.cmd, cmd.args...)
				if r.code != 1 {
					t.Errorf("attest %s: exit code %d, stderr %q; want 1", strings.Join(r.args, " "), r.code, r.stderr)
				}
				for _, w := range st.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("attest %s: stderr %q does not say %q", strings.Join(r.args, " "), r.stderr, w)
					}
				}
				if !sameFiles(before, snapshot(t, dir)) {
					t.Errorf("attest %s changed the data directory", strings.Join(r.args, " "))
				}
			}
		})
	}

	t.Run("keys with a fresh PostgreSQL database", func(t *testing.T) {
		u := storetest.PostgresURL(t)
		for _, cmd := range cmds {
			dir := copyDir(t, base)
			r := attestCmd(t, dir, cmd.cmd, append(slices.Clone(cmd.args), "--database-url", u)...)
			if r.code != 1 || !strings.Contains(r.stderr, "log-signing.key") ||
				!strings.Contains(r.stderr, "--database-url is missing or has no attest schema") {
				t.Errorf("attest %s: exit code %d, stderr %q; want 1 and the key files named",
					strings.Join(r.args, " "), r.code, r.stderr)
			}
		}
		if n := pgTables(t, u); n != 0 {
			t.Errorf("the fresh schema has %d tables after the refused commands, want none", n)
		}
	})
}

// A tenant deleted from the database behind attest's back is reported by
// verify, through the witness, and its name cannot start a new log.
func TestDeletedTenantIsFound(t *testing.T) {
	t.Parallel()
	dir := initDir(t)
	attestCmd(t, dir, "tenant create", "acme").want(t, 0)
	evs := writeFile(t, "events.ndjson", string(ndjson(t, events(3, "svc", "record.read"))))
	attestCmd(t, dir, "import", "--format", "ndjson", "--tenant", "acme", evs).want(t, 0)
	attestCmd(t, dir, "verify").want(t, 0)
	const acme = `(SELECT id FROM tenants WHERE name = 'acme')`
	var stmts []string
	for _, table := range []string{"entries", "tiles", "log_state", "checkpoints", "subjects", "api_keys"} {
		stmts = append(stmts, "DELETE FROM "+table+" WHERE tenant_id = "+acme)
	}
	stmts = append(stmts, "DELETE FROM postings WHERE segment_id IN (SELECT id FROM segments WHERE tenant_id = "+acme+")",
		"DELETE FROM segments WHERE tenant_id = "+acme, "DELETE FROM tenants WHERE name = 'acme'")
	sqliteExec(t, filepath.Join(dir, "attest.db"), stmts...)
	r := attestCmd(t, dir, "verify").want(t, 1)
	if !strings.Contains(r.stdout, "acme: FAILED: this data directory signed a log of this tenant") {
		t.Fatalf("verify after deleting a tenant: %q", r.stdout)
	}
	r = attestCmd(t, dir, "verify", "--tenant", "acme").want(t, 1)
	if !strings.Contains(r.stdout, "acme: FAILED: this data directory signed a log of this tenant") {
		t.Fatalf("verify --tenant after deleting it: %q", r.stdout)
	}
	r = attestCmd(t, dir, "tenant create", "acme").want(t, 1)
	if !strings.Contains(r.stderr, "the database has lost it") {
		t.Fatalf("recreating a deleted tenant: %q", r.stderr)
	}
}

// An imported record that names another tenant is refused, not moved.
func TestImportRefusesAnotherTenantsRecord(t *testing.T) {
	t.Parallel()
	dir := initDir(t)
	attestCmd(t, dir, "tenant create", "acme").want(t, 0)
	evs := events(2, "svc", "record.read")
	lines := strings.SplitN(string(ndjson(t, evs)), "\n", 2)
	other := strings.Replace(lines[0], `{`, `{"tenant":"acme",`, 1)
	f := writeFile(t, "events.ndjson", other+"\n"+lines[1])
	r := attestCmd(t, dir, "import", "--format", "ndjson", f).want(t, 1)
	if !strings.Contains(r.stderr, `line 1: tenant: names "acme"`) {
		t.Fatalf("stderr %q", r.stderr)
	}
}
