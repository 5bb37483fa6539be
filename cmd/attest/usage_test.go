package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/attest/attest/internal/store/storetest"
)

// TestUsageErrors checks that mistakes in a command line exit with code 2
// and a message that names the flag or argument, before anything is done.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := initDir(t)
	// A port in use: should serve get past its checks, it fails fast.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	serve := func(args ...string) []string { return append([]string{"--addr", busy.Addr().String()}, args...) }
	events := writeFile(t, "events.ndjson", string(ndjson(t, events(1, "svc", "record.read"))))
	notAKey := writeFile(t, "vkey", "not a verifier key\n")
	const pgURL = "postgres://attest@127.0.0.1:1/attest"
	tests := []struct {
		name  string
		cmd   string
		args  []string
		env   []string
		noDir bool // run without --data-dir
		want  string
	}{
		{"serve with an argument", "serve", serve("extra"), nil, false, `unexpected argument "extra"`},
		{"init with an argument", "init", []string{"extra"}, nil, false, `unexpected argument "extra"`},
		{"tenant list with an argument", "tenant list", []string{"extra"}, nil, false, `unexpected argument "extra"`},
		{"tenant create with two names", "tenant create", []string{"a", "b"}, nil, false, `unexpected argument "b"`},
		{"apikey list with an argument", "apikey list", []string{"extra"}, nil, false, `unexpected argument`},
		{"apikey create with an argument", "apikey create", []string{"--role", "operator", "extra"}, nil, false,
			`unexpected argument "extra"`},
		{"apikey revoke with two ids", "apikey revoke", []string{"a", "b"}, nil, false, `unexpected argument "b"`},
		{"verify with an argument", "verify", []string{"extra"}, nil, false, `unexpected argument "extra"`},
		{"import into the operator tenant", "import", []string{"--format", "ndjson", "--tenant", "operator", events}, nil, false,
			"operator tenant"},
		{"bench skipping an unknown phase", "bench", []string{"--skip", "verify,bogus"}, nil, true, `unknown phase "bogus"`},
		{"audit query with an argument", "audit query", []string{"extra"}, nil, false, `unexpected argument`},
		{"audit public-key with an argument", "audit public-key", []string{"extra"}, nil, false, `unexpected`},
		{"audit checkpoint with an argument", "audit checkpoint", []string{"extra"}, nil, false, `unexpected`},
		{"bench with an argument", "bench", []string{"--events", "100", "--queries", "1", "extra"}, nil, true,
			`unexpected argument "extra"`},
		{"version with an argument", "version", []string{"extra"}, nil, true, `unexpected argument "extra"`},

		{"apikey create in an unknown tenant", "apikey create", []string{"--tenant", "nosuch", "--role", "ingest"},
			nil, false, `--tenant: no tenant named "nosuch"`},
		{"apikey create for ingest into the operator tenant", "apikey create",
			[]string{"--tenant", "operator", "--role", "ingest"}, nil, false, "--tenant operator: the operator " +
				"tenant holds attest's own audit trail and takes no events, so it has no ingest keys"},
		{"audit query with a malformed cursor", "audit query", []string{"--cursor", "garbage"}, nil, false,
			"--cursor: cursor was not issued for this query"},
		{"apikey create with a control character in its name", "apikey create", []string{"--tenant", "default",
			"--role", "reader", "--name", "evil\x1b[2J"}, nil, false, "--name: name must not hold control"},
		{"audit query with its times reversed", "audit query", []string{"--occurred-from", "2026-01-02T00:00:00Z",
			"--occurred-to", "2026-01-01T00:00:00Z"}, nil, false, "--occurred-to is before --occurred-from"},
		{"audit query with a zero time", "audit query", []string{"--received-to", "0001-01-01T00:00:00Z"}, nil, false,
			"--received-to is before 1990-01-01"},
		{"apikey list of an unknown tenant", "apikey list", []string{"--tenant", "nosuch"}, nil, false,
			`--tenant: no tenant named "nosuch"`},
		{"apikey revoke in an unknown tenant", "apikey revoke", []string{"--tenant", "nosuch", "someid"}, nil,
			false, `--tenant: no tenant named "nosuch"`},
		{"import into an unknown tenant", "import", []string{"--format", "ndjson", "--tenant", "nosuch", events},
			nil, false, `--tenant: no tenant named "nosuch"`},
		{"audit query of an unknown tenant", "audit query", []string{"--tenant", "nosuch"}, nil, false,
			`--tenant: no tenant named "nosuch"`},
		{"audit checkpoint of an unknown tenant", "audit checkpoint", []string{"--tenant", "nosuch"}, nil, false,
			`--tenant: no tenant named "nosuch"`},
		{"verify an unknown tenant", "verify", []string{"--tenant", "nosuch"}, nil, false,
			`--tenant: no tenant named "nosuch"`},

		{"unknown personal field", "serve", serve("--personal-fields", "bogus"), nil, false,
			`--personal-fields: "bogus"`},
		{"unknown personal field among known", "serve", serve("--personal-fields", "actor.email,target.nam"), nil,
			false, `--personal-fields: "target.nam"`},

		{"zero lifetime", "apikey create", []string{"--tenant", "default", "--role", "ingest", "--expires", "0"},
			nil, false, "--expires must be a positive duration"},
		{"negative lifetime", "apikey create", []string{"--role", "operator", "--expires", "-1h"}, nil, false,
			"--expires must be a positive duration"},
		{"zero shutdown timeout", "serve", serve("--shutdown-timeout", "0"), nil, false,
			"--shutdown-timeout must be a positive duration"},
		{"negative shutdown timeout", "serve", serve("--shutdown-timeout", "-5s"), nil, false,
			"--shutdown-timeout must be a positive duration"},
		{"zero shutdown timeout from the environment", "serve", serve(), []string{"ATTEST_SHUTDOWN_TIMEOUT=0s"},
			false, "ATTEST_SHUTDOWN_TIMEOUT must be a positive duration"},
		{"zero checkpoint interval", "serve", serve("--checkpoint-interval", "0"), nil, false,
			"--checkpoint-interval"},

		{"another instance name on serve", "serve", serve("--instance-name", "other.example"), nil, false,
			`--instance-name "other.example" does not match`},
		{"another instance name on init", "init", []string{"--instance-name", "other.example"}, nil, false,
			`--instance-name "other.example" does not match`},

		{"body limit above the maximum", "serve", serve("--max-body", "2GiB"), nil, false,
			"--max-body: must be at most 1GiB"},
		{"body limit one byte above the maximum", "serve", serve("--max-body", "1073741825"), nil, false,
			"--max-body: must be at most 1GiB"},
		{"body limit that overflows", "serve", serve("--max-body", "9223372036854775807GiB"), nil, false,
			"--max-body: must be at most 1GiB"},

		{"PostgreSQL without a data directory", "tenant list", []string{"--database-url", pgURL, "--data-dir", ""},
			nil, false, "--data-dir is required with --database-url"},
		{"serve on PostgreSQL without a data directory", "serve", serve("--database-url", pgURL, "--data-dir", ""),
			nil, false, "--data-dir is required with --database-url"},
		{"PostgreSQL from the environment without a data directory", "apikey list", []string{"--data-dir", ""},
			[]string{"ATTEST_DATABASE_URL=" + pgURL}, false, "--data-dir is required with --database-url"},

		{"malformed public key", "verify", []string{"--public-key", "attest+nothex+AAAA"}, nil, false,
			`--public-key: "attest+nothex+AAAA" is neither a verifier key`},
		{"file without a public key", "verify", []string{"--public-key", notAKey}, nil, false,
			"--public-key: " + `"` + notAKey + `"`},

		{"TLS certificate without its key", "serve", serve("--tls-cert", filepath.Join(dir, "tls", "cert.pem")),
			nil, false, "--tls-cert and --tls-key go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dir
			if tt.noDir {
				d = ""
			}
			r := attestEnv(t, tt.env, d, tt.cmd, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("attest %s: exit code %d, stderr %q; want 2 and %q",
					strings.Join(r.args, " "), r.code, r.stderr, tt.want)
			}
		})
	}
	if r := attestCmd(t, dir, "apikey list", "--output", "json").want(t, 0); strings.Count(r.stdout, `"id"`) != 1 {
		t.Errorf("keys after the refused commands: %s, want only the bootstrap key", r.stdout)
	}
}

// TestPostgresNeedsItsDataDirectory checks that, on an initialised
// PostgreSQL database, a data directory without the instance's keys is
// refused by name rather than filled with new keys.
func TestPostgresNeedsItsDataDirectory(t *testing.T) {
	t.Parallel()
	u := storetest.PostgresURL(t)
	attestCmd(t, t.TempDir(), "init", "--database-url", u).want(t, 0)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, cmd := range []commandLine{
		{"tenant list", nil},
		{"verify", nil},
		{"serve", []string{"--addr", busy.Addr().String()}},
		{"init", nil},
	} {
		empty := t.TempDir()
		r := attestCmd(t, empty, cmd.cmd, append(slices.Clone(cmd.args), "--database-url", u)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--data-dir "+empty+" has no log-signing.key") {
			t.Errorf("attest %s: exit code %d, stderr %q; want 2 and the data directory named",
				strings.Join(r.args, " "), r.code, r.stderr)
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("attest %s wrote into %s", strings.Join(r.args, " "), empty)
		}
	}
}

// TestHelp checks that -h and --help print a command's usage on standard
// output and exit 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "init", "tenant", "tenant create", "tenant list", "apikey",
		"apikey create", "apikey list", "apikey revoke", "import", "verify", "audit", "audit query",
		"audit public-key", "audit checkpoint", "bench", "version"} {
		for _, h := range []string{"-h", "--help"} {
			r := attestCmd(t, "", cmd, h)
			if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "Usage: attest "+cmd) {
				t.Errorf("attest %s %s: exit code %d, stdout %q, stderr %q; want 0 and the usage on stdout",
					cmd, h, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// serve on a busy address stops before it creates a store or a key.
func TestServeOnABusyAddressCreatesNothing(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := filepath.Join(t.TempDir(), "data")
	r := attestCmd(t, dir, "serve", "--addr", busy.Addr().String()).want(t, 1)
	if !strings.Contains(r.stderr, "listen on") || strings.Contains(r.stdout, "atk_") {
		t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the data directory was created: %v", err)
	}
}
