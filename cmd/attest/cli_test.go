package main

import (
	"bytes"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"
)

// anyFailure, as a wanted exit code, accepts every code but 0.
const anyFailure = -1

// fields splits a command line on spaces.
func fields(s string) []string { return strings.Fields(s) }

// usageCase is one command that must fail, and what it must say.
type usageCase struct {
	name string
	cmd  string
	args []string
	code int    // wanted exit code, or anyFailure
	want string // text the standard error must contain
}

// runUsageCases runs each case on dir and checks its exit code and message.
func runUsageCases(t *testing.T, dir string, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := attestCmd(t, dir, tc.cmd, tc.args...)
			switch {
			case tc.code == anyFailure && r.code == 0:
				t.Errorf("attest %s: exit code 0, want a failure", strings.Join(r.args, " "))
			case tc.code != anyFailure && r.code != tc.code:
				t.Errorf("attest %s: exit code %d, want %d", strings.Join(r.args, " "), r.code, tc.code)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("attest %s: stderr %q does not contain %q",
					strings.Join(r.args, " "), r.stderr, tc.want)
			}
		})
	}
}

func TestServeFreshStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	if len(s.keys) != 1 {
		t.Fatalf("first serve printed %d bootstrap keys, want 1; stdout:\n%s", len(s.keys), s.stdout)
	}
	// The bootstrap key is an operator key: it may list the tenants.
	s.call(t, "GET", "/api/v1/tenants", s.key, nil, nil, http.StatusOK)

	t.Run("key files are private", func(t *testing.T) {
		for _, name := range []string{"log-signing.key", "kek.key", filepath.Join("tls", "key.pem")} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Error(err)
				continue
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s: mode %v, want %v", name, got, os.FileMode(0o600))
			}
		}
	})

	s.stop()
	t.Run("second start prints no key", func(t *testing.T) {
		again := startServe(t, dir)
		again.forbid(secretOf(s.key))
		if len(again.keys) != 0 {
			t.Errorf("second serve printed %d bootstrap keys, want none; stdout:\n%s",
				len(again.keys), again.stdout)
		}
		again.call(t, "GET", "/api/v1/tenants", s.key, nil, nil, http.StatusOK)
	})
}

func TestServeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	pool, err := certPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		max    uint16
		protos []string
		// wantProto is the ALPN protocol agreed; empty means the
		// handshake must fail.
		wantProto string
	}{
		{"TLS 1.0 only", tls.VersionTLS10, nil, ""},
		{"TLS 1.2 only", tls.VersionTLS12, []string{"h2", "http/1.1"}, ""},
		{"TLS 1.3 offering h2", tls.VersionTLS13, []string{"h2", "http/1.1"}, "h2"},
		{"TLS 1.3 offering http/1.1", tls.VersionTLS13, []string{"http/1.1"}, "http/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{
				RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tt.max, NextProtos: tt.protos}}
			conn, err := d.DialContext(t.Context(), "tcp", s.addr)
			if tt.wantProto == "" {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded, want it refused")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			st := conn.(*tls.Conn).ConnectionState()
			if st.Version != tls.VersionTLS13 {
				t.Errorf("version %s, want TLS 1.3", tls.VersionName(st.Version))
			}
			if st.NegotiatedProtocol != tt.wantProto {
				t.Errorf("ALPN protocol %q, want %q", st.NegotiatedProtocol, tt.wantProto)
			}
		})
	}

	t.Run("HTTP/2 request", func(t *testing.T) {
		resp, err := s.client.Get(s.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("protocol %s, want HTTP/2", resp.Proto)
		}
		if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
			t.Errorf("connection state %+v, want TLS 1.3", resp.TLS)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got == "" {
			t.Error("no Strict-Transport-Security header")
		}
	})
}

// newKey creates an API key with attest apikey create and returns it.
func newKey(t *testing.T, s *serveProc, args ...string) string {
	t.Helper()
	r := attestCmd(t, s.dir, "apikey create", args...).want(t, 0)
	key := strings.TrimSpace(r.stdout)
	if !tokenRE.MatchString(key) || tokenRE.FindString(key) != key {
		t.Fatalf("apikey create printed %q on stdout, want one API key", r.stdout)
	}
	s.forbid(secretOf(key))
	return key
}

// keyID is the public id of an API key: the text between its underscores.
func keyID(key string) string { return strings.Split(key, "_")[1] }

// keyView is a key as apikey list --output json shows it.
type keyView struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Role      string `json:"role"`
	Name      string `json:"name"`
	ExpiresAt string `json:"expires_at"`
	RevokedAt string `json:"revoked_at"`
}

func listKeys(t *testing.T, dir, tenant string) map[string]keyView {
	t.Helper()
	r := attestCmd(t, dir, "apikey list", "--tenant", tenant, "--output", "json").want(t, 0)
	var ks []keyView
	if err := json.Unmarshal([]byte(r.stdout), &ks); err != nil {
		t.Fatalf("apikey list --output json: %v; stdout: %s", err, r.stdout)
	}
	out := map[string]keyView{}
	for _, k := range ks {
		out[k.ID] = k
	}
	return out
}

func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	body := ndjson(t, events(1, "svc", "transcript.read"))

	// The expiring key is made first, so that the wait for its expiry
	// overlaps the rest of the test.
	expiring := newKey(t, s, "--tenant", "default", "--role", "ingest", "--name", "brief", "--expires", "1s")
	expiringMade := time.Now()
	key := newKey(t, s, "--tenant", "default", "--role", "ingest", "--name", "svc")
	id := keyID(key)

	t.Run("ingest with the new key", func(t *testing.T) {
		resp := s.ingest(t, key, "", body)
		if resp.Accepted != 1 {
			t.Errorf("accepted %d events, want 1", resp.Accepted)
		}
		// An ingest key may not read the trail.
		s.call(t, "GET", "/api/v1/compliance/audit-trail", key, nil, nil, http.StatusForbidden)
	})

	t.Run("list shows it", func(t *testing.T) {
		r := attestCmd(t, dir, "apikey list", "--tenant", "default").want(t, 0)
		var row []string
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == id {
				row = f
			}
		}
		// ID TENANT ROLE NAME CREATED EXPIRES REVOKED
		if len(row) != 7 || row[1] != "default" || row[2] != "ingest" || row[3] != "svc" || row[6] != "-" {
			t.Errorf("apikey list row of %s is %q; stdout:\n%s", id, row, r.stdout)
		}
		if k := listKeys(t, dir, "default")[keyID(expiring)]; k.ExpiresAt == "" {
			t.Errorf("key created with --expires 1s is listed as %+v, want an expiry", k)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		r := attestCmd(t, dir, "apikey revoke", id).want(t, 0)
		if !strings.Contains(r.stdout, "revoked "+id) {
			t.Errorf("apikey revoke printed %q, want it to name %s", r.stdout, id)
		}
		s.call(t, "POST", "/api/v1/audit/events", key, ndjsonTo(""), body, http.StatusUnauthorized)
		if k := listKeys(t, dir, "default")[id]; k.RevokedAt == "" {
			t.Errorf("revoked key is listed as %+v, want a revocation time", k)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		time.Sleep(time.Until(expiringMade.Add(2 * time.Second)))
		s.call(t, "POST", "/api/v1/audit/events", expiring, ndjsonTo(""), body, http.StatusUnauthorized)
	})

	t.Run("refused", func(t *testing.T) {
		runUsageCases(t, dir, []usageCase{
			{"unknown role", "apikey create", fields("--tenant default --role superuser"), 2, "--role"},
			{"no role", "apikey create", fields("--tenant default"), 2, "--role"},
			{"unknown tenant", "apikey create", fields("--tenant nope --role ingest"), 2, `"nope"`},
			{"operator key in a tenant", "apikey create", fields("--tenant default --role operator"), 2,
				"operator keys"},
			{"negative lifetime", "apikey create", fields("--tenant default --role ingest --expires -1h"), 2,
				"--expires"},
			{"revoke unknown key", "apikey revoke", fields("nosuchkey"), 1, `"nosuchkey"`},
		})
	})
}

// tenantNames are the names in the first column of attest tenant list.
func tenantNames(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("tenant list printed no header:\n%s", out)
	}
	var names []string
	for _, l := range lines[1:] {
		names = append(names, strings.Fields(l)[0])
	}
	return names
}

func TestTenantCommands(t *testing.T) {
	t.Parallel()
	dir := initDir(t)
	r := attestCmd(t, dir, "tenant create", "acme").want(t, 0)
	if !strings.Contains(r.stdout, "created tenant acme") {
		t.Errorf("tenant create printed %q, want it to name acme", r.stdout)
	}
	list := attestCmd(t, dir, "tenant list").want(t, 0)
	want := []string{"acme", "default", "operator"}
	if diff := cmp.Diff(want, tenantNames(t, list.stdout)); diff != "" {
		t.Errorf("tenant list (-want +got):\n%s", diff)
	}

	cases := []usageCase{{"existing name", "tenant create", []string{"acme"}, 1, "already exists"}}
	bad := []string{"Bad Name", "UPPER", "9lives", "trailing.dot", "under_score", strings.Repeat("a", 64)}
	for _, name := range bad {
		cases = append(cases, usageCase{fmt.Sprintf("name %q", name), "tenant create", []string{name}, 2,
			fmt.Sprintf("%q must be", name)})
	}
	cases = append(cases, usageCase{"no name", "tenant create", nil, 2, "usage"},
		usageCase{"unknown subcommand", "tenant delete", []string{"acme"}, 2, "usage"})
	runUsageCases(t, dir, cases)

	list = attestCmd(t, dir, "tenant list").want(t, 0)
	if diff := cmp.Diff(want, tenantNames(t, list.stdout)); diff != "" {
		t.Errorf("tenant list after refused commands (-want +got):\n%s", diff)
	}
}

// postFile posts a file to the ingest API in format and returns the answer.
func postFile(t *testing.T, s *serveProc, key, format, file string) (int, ingestResponse) {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	status, b, err := s.send("POST", "/api/v1/audit/events?format="+format, key, nil, body)
	if err != nil {
		t.Fatalf("post %s: %v", file, err)
	}
	var resp ingestResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("post %s: status %d, answer %s: %v", file, status, b, err)
	}
	return status, resp
}

func TestImportDatasets(t *testing.T) {
	t.Parallel()
	cloudtrail := datasetFiles(t, "cloudtrail-stratus-red-team")
	kubernetes := datasetFiles(t, "k8s-audit-falco")
	dir := t.TempDir()
	s := startServe(t, dir)
	key := newKey(t, s, "--tenant", "default", "--role", "ingest", "--name", "importer")
	importArgs := func(format string, files []string) []string {
		return append([]string{"--format", format, "--tenant", "default"}, files...)
	}

	t.Run("cloudtrail", func(t *testing.T) {
		r := attestCmd(t, dir, "import", importArgs("cloudtrail", cloudtrail)...).want(t, 0)
		if diff := cmp.Diff(importCounts{310, 310, 0, 0}, importTotal(t, r)); diff != "" {
			t.Errorf("first import (-want +got):\n%s", diff)
		}
		r = attestCmd(t, dir, "import", importArgs("cloudtrail", cloudtrail)...).want(t, 0)
		if diff := cmp.Diff(importCounts{310, 0, 310, 0}, importTotal(t, r)); diff != "" {
			t.Errorf("second import (-want +got):\n%s", diff)
		}
	})

	t.Run("kubernetes", func(t *testing.T) {
		r := attestCmd(t, dir, "import", importArgs("kubernetes", kubernetes)...).want(t, 1)
		// Two pairs of files share an auditID and stage for different
		// requests; the record's digest in the id keeps them apart.
		if diff := cmp.Diff(importCounts{52, 51, 0, 1}, importTotal(t, r)); diff != "" {
			t.Errorf("import (-want +got):\n%s", diff)
		}
		var rejected []string
		for _, l := range strings.Split(r.stderr, "\n") {
			if strings.Contains(l, ": line ") {
				rejected = append(rejected, l)
			}
		}
		if len(rejected) != 1 || !strings.Contains(rejected[0], "fal_01_003.json: line 1:") {
			t.Errorf("rejections on stderr %q, want one for fal_01_003.json line 1", rejected)
		}
	})

	t.Run("cloudtrail through the API", func(t *testing.T) {
		var got ingestResponse
		for _, f := range cloudtrail {
			status, resp := postFile(t, s, key, "cloudtrail", f)
			if status != http.StatusOK {
				t.Errorf("post %s: status %d, want 200", filepath.Base(f), status)
			}
			for _, res := range resp.Results {
				if res.Status != "duplicate" || res.Sequence == nil {
					t.Errorf("%s record %d: status %q, sequence %v; want a duplicate with its sequence",
						filepath.Base(f), res.Index, res.Status, res.Sequence)
				}
			}
			got.Accepted, got.Duplicate, got.Rejected = got.Accepted+resp.Accepted,
				got.Duplicate+resp.Duplicate, got.Rejected+resp.Rejected
		}
		if diff := cmp.Diff(ingestResponse{Duplicate: 310}, got); diff != "" {
			t.Errorf("counts over all files (-want +got):\n%s", diff)
		}
	})

	t.Run("kubernetes through the API", func(t *testing.T) {
		var got ingestResponse
		for _, f := range kubernetes {
			status, resp := postFile(t, s, key, "kubernetes", f)
			wantStatus := http.StatusOK
			if filepath.Base(f) == "fal_01_003.json" {
				// Its only record is rejected.
				wantStatus = http.StatusBadRequest
				rs := resp.Results
				if len(rs) != 1 || rs[0].Error == nil || rs[0].Error.Field != "kind" {
					t.Errorf("post %s: results %+v, want one rejected for its kind", filepath.Base(f), rs)
				}
			}
			if status != wantStatus {
				t.Errorf("post %s: status %d, want %d", filepath.Base(f), status, wantStatus)
			}
			got.Accepted, got.Duplicate, got.Rejected = got.Accepted+resp.Accepted,
				got.Duplicate+resp.Duplicate, got.Rejected+resp.Rejected
		}
		if diff := cmp.Diff(ingestResponse{Duplicate: 51, Rejected: 1}, got); diff != "" {
			t.Errorf("counts over all files (-want +got):\n%s", diff)
		}
	})

	attestCmd(t, dir, "verify", "--tenant", "default").want(t, 0)
}

var intactRE = regexp.MustCompile(`(?m)^(\S+): intact: (\d+) entries`)

// intactTenants maps each tenant verify reported intact to its entries.
func intactTenants(out string) map[string]int {
	m := map[string]int{}
	for _, sm := range intactRE.FindAllStringSubmatch(out, -1) {
		m[sm[1]], _ = strconv.Atoi(sm[2])
	}
	return m
}

func TestVerifyWhileServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	attestCmd(t, dir, "tenant create", "acme").want(t, 0)
	// More than a full entry bundle of 256 in default.
	s.ingest(t, s.key, "default", ndjson(t, events(300, "svc", "record.read")))
	s.ingest(t, s.key, "acme", ndjson(t, events(10, "svc", "record.read")))

	r := attestCmd(t, dir, "verify").want(t, 0)
	got := intactTenants(r.stdout)
	for _, name := range []string{"acme", "default", "operator"} {
		if _, ok := got[name]; !ok {
			t.Errorf("verify did not report %s intact; stdout:\n%s", name, r.stdout)
		}
	}
	if got["default"] < 300 {
		t.Errorf("verify checked %d entries of default, want at least 300", got["default"])
	}

	r = attestCmd(t, dir, "verify", "--deep", "--tenant", "default").want(t, 0)
	_, intact := intactTenants(r.stdout)["default"]
	if !intact || !strings.Contains(r.stdout, "personal values match") {
		t.Errorf("verify --deep printed:\n%s\nwant default intact and its personal values checked", r.stdout)
	}

	t.Run("quiet", func(t *testing.T) {
		if r := attestCmd(t, dir, "verify", "--quiet").want(t, 0); r.stdout != "" {
			t.Errorf("verify --quiet printed %q, want nothing", r.stdout)
		}
	})
	t.Run("one tenant", func(t *testing.T) {
		r := attestCmd(t, dir, "verify", "--tenant", "acme").want(t, 0)
		if got := intactTenants(r.stdout); len(got) != 1 || got["acme"] < 10 {
			t.Errorf("verify --tenant acme reported %v, want acme alone with at least 10 entries", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		runUsageCases(t, dir, []usageCase{
			{"unknown tenant", "verify", []string{"--tenant", "nope"}, 2, `"nope"`},
			{"tenant and all", "verify", []string{"--tenant", "acme", "--all"}, 2, "--all"},
			{"missing checkpoint file", "verify", []string{"--checkpoint", filepath.Join(dir, "nope")}, 2,
				"--checkpoint"},
		})
	})
}

// queryItem is one event as attest audit query --output json prints it.
type queryItem struct {
	Sequence int64 `json:"sequence"`
	Event    struct {
		ID       string `json:"id"`
		Action   string `json:"action"`
		Category string `json:"category"`
		Sequence int64  `json:"sequence"`
		Source   struct {
			Name string `json:"name"`
		} `json:"source"`
		Outcome struct {
			Result string `json:"result"`
		} `json:"outcome"`
	} `json:"event"`
}

type queryPage struct {
	Items      []queryItem `json:"items"`
	NextCursor string      `json:"next_cursor"`
	TreeSize   int64       `json:"tree_size"`
}

// query runs attest audit query --output json with args and decodes it.
func query(t *testing.T, dir string, args ...string) queryPage {
	t.Helper()
	r := attestCmd(t, dir, "audit query", append([]string{"--output", "json"}, args...)...).want(t, 0)
	var p queryPage
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("attest %s: %v; stdout: %s", strings.Join(r.args, " "), err, r.stdout)
	}
	return p
}

// queryAll follows the cursors of a query to its end.
func queryAll(t *testing.T, dir string, args ...string) []queryItem {
	t.Helper()
	var all []queryItem
	cursor := []string{}
	for {
		p := query(t, dir, append(args, cursor...)...)
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		cursor = []string{"--cursor", p.NextCursor}
	}
}

func TestAuditQuery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	var evs []testEvent
	for _, a := range fields("s3:GetObject s3:PutObject s3:DeleteObject s3:GetObject s3:ListBucket") {
		evs = append(evs, newEvent("storage", a, "data_access", "success"))
	}
	for _, res := range []string{"success", "failure", "denied"} {
		evs = append(evs, newEvent("idp", "user.login", "authentication", res))
	}
	evs = append(evs, newEvent("app", "transcript.read", "data_access", "success"),
		newEvent("app", "sts:AssumeRole", "authorization", "success"))
	s.ingest(t, s.key, "default", ndjson(t, evs))

	t.Run("json", func(t *testing.T) {
		p := query(t, dir, "--tenant", "default", "--action-prefix", "s3:")
		if len(p.Items) != 5 {
			t.Fatalf("got %d items, want 5: %+v", len(p.Items), p.Items)
		}
		for i, it := range p.Items {
			if !strings.HasPrefix(it.Event.Action, "s3:") || it.Event.Sequence != it.Sequence {
				t.Errorf("item %d: %+v, want an s3: action and the item's sequence", i, it)
			}
			if i > 0 && it.Sequence >= p.Items[i-1].Sequence {
				t.Errorf("item %d: sequence %d after %d, want newest first",
					i, it.Sequence, p.Items[i-1].Sequence)
			}
		}
		if p.TreeSize < int64(len(evs)) {
			t.Errorf("tree_size %d, want at least %d", p.TreeSize, len(evs))
		}
	})

	t.Run("table", func(t *testing.T) {
		r := attestCmd(t, dir, "audit query", "--tenant", "default", "--category", "authentication",
			"--output", "table").want(t, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		header := []string{"SEQ", "OCCURRED", "ACTOR", "ACTION", "TARGET", "OUTCOME", "SOURCE"}
		if diff := cmp.Diff(header, strings.Fields(lines[0])); diff != "" {
			t.Fatalf("table header (-want +got):\n%s", diff)
		}
		var outcomes []string
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) != len(header) || f[3] != "user.login" || f[6] != "idp" {
				t.Errorf("row %q, want a user.login event of idp", l)
				continue
			}
			outcomes = append(outcomes, f[5])
		}
		slices.Sort(outcomes)
		if diff := cmp.Diff([]string{"denied", "failure", "success"}, outcomes); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
	})

	t.Run("pages", func(t *testing.T) {
		items := queryAll(t, dir, fields("--tenant default --action-prefix s3: --limit 2 --order asc")...)
		var seqs []int64
		for _, it := range items {
			seqs = append(seqs, it.Sequence)
		}
		if len(seqs) != 5 || !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != 5 {
			t.Errorf("sequences over pages of 2: %v, want 5 distinct, ascending", seqs)
		}
	})

	t.Run("outcome", func(t *testing.T) {
		p := query(t, dir, "--tenant", "default", "--outcome", "denied", "--source", "idp")
		if len(p.Items) != 1 || p.Items[0].Event.Outcome.Result != "denied" {
			t.Errorf("--outcome denied --source idp: %+v, want the one denied login", p.Items)
		}
	})

	t.Run("refused", func(t *testing.T) {
		runUsageCases(t, dir, []usageCase{
			{"unknown outcome", "audit query", []string{"--outcome", "maybe"}, anyFailure, "outcome"},
			{"limit 0", "audit query", []string{"--limit", "0"}, 2, "--limit"},
			{"limit 1001", "audit query", []string{"--limit", "1001"}, 2, "--limit"},
			{"unknown order", "audit query", []string{"--order", "sideways"}, 2, "--order"},
			{"unknown output", "audit query", []string{"--output", "xml"}, 2, "--output"},
			{"bad time", "audit query", []string{"--occurred-from", "yesterday"}, 2, "--occurred-from"},
			{"unknown tenant", "audit query", []string{"--tenant", "nope"}, 2, `"nope"`},
		})
	})
}

var vkeyRE = regexp.MustCompile(`^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$`)

// parseVerifierKey checks a signed-note verifier key for an Ed25519 key
// and returns its origin.
func parseVerifierKey(t *testing.T, vkey string) string {
	t.Helper()
	m := vkeyRE.FindStringSubmatch(vkey)
	if m == nil {
		t.Fatalf("verifier key %q is not <origin>+<hash>+<base64>", vkey)
	}
	key, err := base64.StdEncoding.DecodeString(m[3])
	if err != nil || len(key) != 33 || key[0] != 1 {
		t.Fatalf("verifier key %q: the key is not an Ed25519 key (type 1, 32 bytes)", vkey)
	}
	return m[1]
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckpointVerification(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	s.ingest(t, s.key, "default", ndjson(t, events(20, "svc", "record.read")))

	vkey := strings.TrimSpace(attestCmd(t, dir, "audit public-key", "--tenant", "default").want(t, 0).stdout)
	origin := parseVerifierKey(t, vkey)
	toDefault := map[string]string{"Attest-Tenant": "default"}
	apiKey := s.call(t, "GET", "/api/v1/audit/public-key", s.key, toDefault, nil, http.StatusOK)
	if got := strings.TrimSpace(string(apiKey)); got != vkey {
		t.Errorf("the API's verifier key is %q, the CLI's %q", got, vkey)
	}

	note := attestCmd(t, dir, "audit checkpoint", "--tenant", "default").want(t, 0).stdout
	lines := strings.Split(note, "\n")
	if len(lines) < 5 || lines[0] != origin || lines[3] != "" ||
		!strings.HasPrefix(lines[4], "— "+origin+" ") {
		t.Fatalf("checkpoint:\n%s\nwant origin %q, size, root, a blank line and its signature", note, origin)
	}
	if size, err := strconv.Atoi(lines[1]); err != nil || size < 20 {
		t.Errorf("checkpoint size %q, want at least 20", lines[1])
	}
	if root, err := base64.StdEncoding.DecodeString(lines[2]); err != nil || len(root) != 32 {
		t.Errorf("checkpoint root %q, want a base64 SHA-256 hash", lines[2])
	}
	cpFile := writeFile(t, "checkpoint", note)

	// The log grows after the checkpoint, through the CLI.
	more := writeFile(t, "more.ndjson", string(ndjson(t, events(15, "batch", "record.write"))))
	r := attestCmd(t, dir, "import", "--format", "ndjson", "--tenant", "default", more).want(t, 0)
	if !strings.Contains(r.stdout, "15 records: 15 imported") {
		t.Errorf("import printed %q, want 15 imported", r.stdout)
	}

	other := initDir(t)
	otherKey := strings.TrimSpace(attestCmd(t, other, "audit public-key").want(t, 0).stdout)
	otherNote := attestCmd(t, other, "audit checkpoint", "--tenant", "operator").want(t, 0).stdout
	otherCP := writeFile(t, "other-checkpoint", otherNote)
	size, _ := strconv.Atoi(lines[1])
	forgedNote := strings.Replace(note, "\n"+lines[1]+"\n", fmt.Sprintf("\n%d\n", size+1), 1)
	forged := writeFile(t, "forged", forgedNote)
	keyFile := writeFile(t, "vkey", vkey+"\n")

	tests := []struct {
		name string
		args []string
		code int
		want string // in the output
	}{
		{"extends", []string{"--checkpoint", cpFile}, 0, "default: the log extends the given checkpoint"},
		{"trusted key", []string{"--checkpoint", cpFile, "--public-key", vkey}, 0, "extends the given"},
		{"trusted key file", []string{"--checkpoint", cpFile, "--public-key", keyFile}, 0, "extends the given"},
		{"another instance's key", []string{"--checkpoint", cpFile, "--public-key", otherKey}, 1, "FAILED"},
		{"altered checkpoint", []string{"--checkpoint", forged}, 1, "FAILED"},
		{"another instance's checkpoint", []string{"--checkpoint", otherCP}, 1, "not a log of this instance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := attestCmd(t, dir, "verify", tt.args...).want(t, tt.code)
			if !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("verify printed\n%s%s\nwant %q", r.stdout, r.stderr, tt.want)
			}
		})
	}
}

// tamper changes "success" to "failure" in one leaf of the last uncompressed
// entry row of a tenant that has one, and returns that entry's sequence.
func tamper(t *testing.T, dbPath, tenant string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	var tenantID int64
	err = db.QueryRowContext(ctx, `SELECT id FROM tenants WHERE name = ?`, tenant).Scan(&tenantID)
	if err != nil {
		t.Fatalf("find tenant %s: %v", tenant, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT first_seq, leaves FROM entries WHERE tenant_id = ? AND codec = 0
		ORDER BY first_seq DESC`, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	var leaves []byte
	pos := -1
	for rows.Next() && pos < 0 {
		if err := rows.Scan(&first, &leaves); err != nil {
			t.Fatal(err)
		}
		pos = flipOutcome(t, leaves)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if pos < 0 {
		t.Fatalf("no uncompressed entry of %s has a successful outcome", tenant)
	}
	res, err := db.ExecContext(ctx, `UPDATE entries SET leaves = ? WHERE tenant_id = ? AND first_seq = ?`,
		leaves, tenantID, first)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("update changed %d rows (%v), want 1", n, err)
	}
	return first + int64(pos)
}

// flipOutcome rewrites in place the first leaf of an entry bundle (each
// leaf a big-endian uint16 length and the leaf's JSON) whose outcome is
// "success" to "failure", and returns its position, or -1.
func flipOutcome(t *testing.T, bundle []byte) int {
	t.Helper()
	success := []byte(`"result":"success"`)
	for i, off := 0, 0; off < len(bundle); i++ {
		if off+2 > len(bundle) {
			t.Fatalf("entry bundle truncated at byte %d", off)
		}
		n := int(binary.BigEndian.Uint16(bundle[off:]))
		if off+2+n > len(bundle) {
			t.Fatalf("entry bundle leaf %d overruns the bundle", i)
		}
		leaf := bundle[off+2 : off+2+n]
		if j := bytes.Index(leaf, success); j >= 0 {
			copy(leaf[j+len(`"result":"`):], "failure")
			return i
		}
		off += 2 + n
	}
	return -1
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	s.ingest(t, s.key, "default", ndjson(t, events(20, "svc", "record.read")))
	s.stop()
	attestCmd(t, dir, "verify").want(t, 0)

	seq := tamper(t, filepath.Join(dir, "attest.db"), "default")
	r := attestCmd(t, dir, "verify").want(t, 1)
	if want := fmt.Sprintf("default: FAILED: sequence %d:", seq); !strings.Contains(r.stdout, want) {
		t.Errorf("verify printed:\n%s\nwant %q", r.stdout, want)
	}
	if _, ok := intactTenants(r.stdout)["operator"]; !ok {
		t.Errorf("verify printed:\n%s\nwant operator still intact", r.stdout)
	}
	attestCmd(t, dir, "verify", "--tenant", "operator").want(t, 0)
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	const requests, perRequest = 50, 100
	bodies := make([][]byte, requests)
	for i := range bodies {
		bodies[i] = ndjson(t, events(perRequest, "shutdown", fmt.Sprintf("job.step%d", i)))
	}

	type answer struct {
		status int
		resp   ingestResponse
		err    error
	}
	answers := make([]answer, requests)
	firstDone := make(chan struct{})
	var once sync.Once
	var answered atomic.Int32
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			defer once.Do(func() { close(firstDone) })
			defer answered.Add(1)
			a := &answers[i]
			var b []byte
			a.status, b, a.err = s.send("POST", "/api/v1/audit/events", s.key, ndjsonTo("default"), bodies[i])
			if a.err == nil && a.status == http.StatusOK {
				a.err = json.Unmarshal(b, &a.resp)
			}
		})
	}
	// SIGTERM as soon as one request is answered, while the others are
	// still in flight; stop checks that serve exits 0.
	<-firstDone
	inFlight := requests - int(answered.Load())
	s.stop()
	wg.Wait()

	var ok []ingestResponse
	for i, a := range answers {
		switch {
		case a.err == nil && a.status == http.StatusOK:
			if a.resp.Accepted != perRequest {
				t.Errorf("request %d: 200 with %d accepted, want %d", i, a.resp.Accepted, perRequest)
			}
			ok = append(ok, a.resp)
		case a.status >= 500 && a.status != http.StatusServiceUnavailable:
			t.Errorf("request %d: status %d during shutdown", i, a.status)
		}
	}
	t.Logf("SIGTERM with %d of %d requests in flight; %d were answered 200", inFlight, requests, len(ok))
	if len(ok) == 0 {
		t.Fatal("no request was answered 200, not even the one answered before SIGTERM")
	}

	again := startServe(t, dir)
	again.forbid(secretOf(s.key))
	stored := map[string]int64{}
	for _, it := range queryAll(t, dir, "--tenant", "default", "--source", "shutdown", "--order", "asc",
		"--limit", "1000") {
		stored[it.Event.ID] = it.Sequence
	}
	for _, resp := range ok {
		for _, res := range resp.Results {
			if seq, found := stored[res.ID]; !found || res.Sequence == nil || seq != *res.Sequence {
				t.Errorf("accepted event %s at sequence %v is stored at %d (found %v)",
					res.ID, res.Sequence, seq, found)
			}
		}
		// The event API has it too.
		res := resp.Results[len(resp.Results)-1]
		b := again.call(t, "GET", fmt.Sprintf("/api/v1/audit/events/%d", *res.Sequence), s.key,
			map[string]string{"Attest-Tenant": "default"}, nil, http.StatusOK)
		var got struct {
			Sequence int64 `json:"sequence"`
			Event    struct {
				ID string `json:"id"`
			} `json:"event"`
		}
		err := json.Unmarshal(b, &got)
		if err != nil || got.Event.ID != res.ID || got.Sequence != *res.Sequence {
			t.Errorf("GET event %d: %s, want id %s", *res.Sequence, b, res.ID)
		}
	}
	attestCmd(t, dir, "verify").want(t, 0)
}

func TestEnvironmentConfiguration(t *testing.T) {
	t.Parallel()
	t.Run("ATTEST_DATA_DIR", func(t *testing.T) {
		dir := t.TempDir()
		env := []string{"ATTEST_DATA_DIR=" + dir}
		attestEnv(t, env, "", "init").want(t, 0)
		attestEnv(t, env, "", "tenant create", "fromenv").want(t, 0)
		r := attestEnv(t, env, "", "tenant list").want(t, 0)
		if !slices.Contains(tenantNames(t, r.stdout), "fromenv") {
			t.Errorf("ATTEST_DATA_DIR tenant list:\n%s\nwant fromenv", r.stdout)
		}
		// The flag wins over the variable, and finds the same tenant.
		r = attestEnv(t, []string{"ATTEST_DATA_DIR=" + initDir(t)}, dir, "tenant list").want(t, 0)
		if !slices.Contains(tenantNames(t, r.stdout), "fromenv") {
			t.Errorf("--data-dir tenant list:\n%s\nwant fromenv", r.stdout)
		}
	})

	t.Run("ATTEST_ADDR and ATTEST_MAX_BODY", func(t *testing.T) {
		o := serveOptions{addrFromEnv: true, env: []string{"ATTEST_MAX_BODY=4KiB"}}
		s := startServeOpts(t, t.TempDir(), o)
		log := s.stderr.String()
		if !strings.Contains(log, "addr="+s.addr) || !strings.Contains(log, "max_body=4KiB") {
			t.Errorf("serve's effective configuration does not show addr %s and max_body 4KiB:\n%s",
				s.addr, log)
		}
		s.ingest(t, s.key, "default", ndjson(t, events(1, "svc", "record.read")))
		big := ndjson(t, events(100, "svc", "record.read"))
		s.call(t, "POST", "/api/v1/audit/events", s.key, ndjsonTo("default"), big,
			http.StatusRequestEntityTooLarge)
	})

	t.Run("refused", func(t *testing.T) {
		// Should a case get past its check, it must not serve on the
		// default port nor write a data directory here.
		dir := t.TempDir()
		guard := []string{"ATTEST_DATA_DIR=" + dir, "ATTEST_ADDR=127.0.0.1:" + strconv.Itoa(freePort(t))}
		tests := []struct {
			name string
			env  []string
			args []string
			code int
			want string
		}{
			{"max-body", nil, fields("serve --max-body nonsense"), 2, "--max-body"},
			{"max-body from the environment", []string{"ATTEST_MAX_BODY=12 parsecs"}, fields("serve"), 2,
				"max-body"},
			{"log format", nil, fields("serve --log-format xml"), 2, "--log-format"},
			{"checkpoint interval", nil, fields("serve --checkpoint-interval 2m"), 2, "--checkpoint-interval"},
			{"trusted proxies", nil, fields("serve --trusted-proxies 10.0.0.0/33"), 2, "--trusted-proxies"},
			{"unknown flag", nil, fields("serve --frobnicate"), 2, "frobnicate"},
			{"unknown command", nil, fields("frobnicate"), 2, `unknown command "frobnicate"`},
			{"no command", nil, nil, 2, "Usage: attest COMMAND"},
			{"unknown audit command", nil, fields("audit frobnicate"), 2, `"frobnicate"`},
			{"unknown import format", nil, fields("import --format csv x.csv"), 2, "--format"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := attestEnv(t, append(slices.Clone(guard), tt.env...), "", strings.Join(tt.args, " "))
				r.want(t, tt.code)
				if !strings.Contains(r.stderr, tt.want) {
					t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
				}
			})
		}
	})

	t.Run("version", func(t *testing.T) {
		if r := attestCmd(t, "", "version").want(t, 0); !strings.HasPrefix(r.stdout, "attest ") {
			t.Errorf("version printed %q", r.stdout)
		}
	})
}

func TestConcurrentImportAndIngest(t *testing.T) {
	t.Parallel()
	cloudtrail := datasetFiles(t, "cloudtrail-stratus-red-team")
	dir := t.TempDir()
	s := startServe(t, dir)
	attestCmd(t, dir, "tenant create", "imports").want(t, 0)

	// One goroutine ingests batches into default until the import ends.
	stop := make(chan struct{})
	posted := make(chan struct{}, 1)
	var batches, accepted int
	var postErr error
	var wg sync.WaitGroup
	body := ndjson(t, events(50, "concurrent", "record.read"))
	wg.Go(func() {
		for {
			status, b, err := s.send("POST", "/api/v1/audit/events", s.key, ndjsonTo("default"), body)
			var resp ingestResponse
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", status, b)
			}
			if err == nil {
				err = json.Unmarshal(b, &resp)
			}
			if err != nil {
				postErr = fmt.Errorf("batch %d: %w", batches, err)
				close(posted)
				return
			}
			batches++
			accepted += resp.Accepted
			select {
			case posted <- struct{}{}:
			default:
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	<-posted
	r := attestCmd(t, dir, "import", append([]string{"--format", "cloudtrail", "--tenant", "imports"},
		cloudtrail...)...)
	close(stop)
	wg.Wait()

	r.want(t, 0)
	if diff := cmp.Diff(importCounts{310, 310, 0, 0}, importTotal(t, r)); diff != "" {
		t.Errorf("import (-want +got):\n%s", diff)
	}
	if postErr != nil {
		t.Errorf("ingest while importing: %v", postErr)
	}
	if accepted != 50*batches {
		t.Errorf("%d batches of 50 accepted %d events, want %d", batches, accepted, 50*batches)
	}
	t.Logf("%d batches of 50 were ingested during the import", batches)
	if p := query(t, dir, "--tenant", "imports", "--limit", "1"); p.TreeSize < 310 {
		t.Errorf("imports holds %d entries, want at least 310", p.TreeSize)
	}
	attestCmd(t, dir, "verify").want(t, 0)
}

// initDir returns a data directory initialised with attest init.
func initDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	r := attestCmd(t, dir, "init").want(t, 0)
	if !tokenRE.MatchString(r.stdout) {
		t.Fatalf("attest init printed no bootstrap key: %q", r.stdout)
	}
	return dir
}

// TestOneShotCommandsNeedAnInstance checks that a mistyped data directory is
// refused, not taken for an empty log.
func TestOneShotCommandsNeedAnInstance(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "typo")
	for _, cmd := range []string{"verify", "tenant list", "apikey list", "audit query", "audit public-key"} {
		r := attestCmd(t, missing, cmd).want(t, 1)
		if !strings.Contains(r.stderr, "not an attest data directory") {
			t.Errorf("attest %s on a missing directory: stderr %q", cmd, r.stderr)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("a one-shot command created %s", missing)
	}
}
