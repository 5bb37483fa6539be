package main

// The tests in this package build the attest binary once and run it as a
// user would: serve in the background on a loopback port, the one-shot
// commands against the same data directory, and the API over HTTPS with the
// self-signed certificate as the only trusted root.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// attestBin is the binary under test, built by TestMain.
var attestBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "attest-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "attest e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	attestBin = filepath.Join(dir, "attest")
	build := exec.Command("go", "build", "-o", attestBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "attest e2e: go build:", err)
		return 1
	}
	return m.Run()
}

// environ is the test's environment without any ATTEST_ variable, so that
// the caller's settings cannot leak into a test, plus extra.
func environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATTEST_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// result is what one run of attest printed and how it exited.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// want fails the test unless the command exited with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("attest %s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s",
			strings.Join(r.args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// attestCmd runs attest cmd (one or more words, such as "tenant create")
// with --data-dir dir, unless dir is empty, placed before args.
func attestCmd(t *testing.T, dir, cmd string, args ...string) result {
	t.Helper()
	return attestEnv(t, nil, dir, cmd, args...)
}

// attestEnv is attestCmd with extra environment variables.
func attestEnv(t *testing.T, env []string, dir, cmd string, args ...string) result {
	t.Helper()
	all := strings.Fields(cmd)
	if dir != "" {
		all = append(all, "--data-dir", dir)
	}
	all = append(all, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, attestBin, all...)
	c.Env = environ(env)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("attest %s: %v", strings.Join(all, " "), err)
	}
	return result{args: all, stdout: stdout.String(), stderr: stderr.String(),
		code: c.ProcessState.ExitCode()}
}

// syncBuffer is a bytes.Buffer that a process may write while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tokenRE matches an API key as attest prints it.
var tokenRE = regexp.MustCompile(`atk_[a-z2-7]{16}_[a-z2-7]{52}`)

// passwordRE matches a password with a value in a log line.
var passwordRE = regexp.MustCompile(`(?i)password[\w.-]*"?\s*[=:]\s*"?[^\s",}]`)

// secretOf is the secret part of an API key: the text after its second
// underscore.
func secretOf(tok string) string {
	parts := strings.SplitN(tok, "_", 3)
	if len(parts) != 3 {
		return tok
	}
	return parts[2]
}

// serveOptions change how startServe runs attest serve.
type serveOptions struct {
	// env are extra environment variables.
	env []string
	// addrFromEnv passes the listen address as ATTEST_ADDR rather than
	// with --addr.
	addrFromEnv bool
}

// serveProc is a running attest serve.
type serveProc struct {
	t      *testing.T
	dir    string
	addr   string
	url    string
	client *http.Client
	// keys are the bootstrap keys printed on stdout; key is the first.
	keys []string
	key  string

	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan struct{} // closed once cmd.Wait has returned

	mu sync.Mutex
	// secrets must never appear in the server's log.
	secrets []string

	stopOnce sync.Once
}

// errPortBusy reports that serve could not listen on the port it was given.
var errPortBusy = errors.New("port busy")

// startServe runs attest serve on dir and a free loopback port, and waits
// until it is ready. It is stopped when the test ends.
func startServe(t *testing.T, dir string) *serveProc {
	t.Helper()
	return startServeOpts(t, dir, serveOptions{})
}

func startServeOpts(t *testing.T, dir string, o serveOptions) *serveProc {
	t.Helper()
	var keys []string
	for range 5 {
		s, err := launchServe(t, dir, freePort(t), o)
		if err != nil && !errors.Is(err, errPortBusy) {
			t.Fatal(err)
		}
		keys = append(keys, s.keys...)
		if err != nil {
			continue
		}
		// A start that failed to listen may have bootstrapped already.
		s.keys = keys
		if len(keys) > 0 {
			s.key = keys[0]
			s.forbid(secretOf(s.key))
		}
		return s
	}
	t.Fatal("attest serve: no free port after 5 tries")
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func launchServe(t *testing.T, dir string, port int, o serveOptions) (*serveProc, error) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"serve", "--data-dir", dir}
	env := append([]string{}, o.env...)
	if o.addrFromEnv {
		env = append(env, "ATTEST_ADDR="+addr)
	} else {
		args = append(args, "--addr", addr)
	}
	s := &serveProc{t: t, dir: dir, addr: addr, url: "https://" + addr, stdout: &syncBuffer{},
		stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(attestBin, args...)
	s.cmd.Env = environ(env)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start attest serve: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	err := s.waitReady(30 * time.Second)
	s.keys = tokenRE.FindAllString(s.stdout.String(), -1)
	if err == nil {
		t.Cleanup(s.stop)
		return s, nil
	}
	s.kill()
	if strings.Contains(s.stderr.String(), "address already in use") {
		return s, errPortBusy
	}
	return s, fmt.Errorf("attest serve on %s: %v\nstdout:\n%s\nstderr:\n%s", addr, err, s.stdout, s.stderr)
}

// waitReady polls /readyz until it answers 200.
func (s *serveProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited with code %d before it was ready", s.cmd.ProcessState.ExitCode())
		case <-time.After(20 * time.Millisecond):
		}
		if s.client == nil {
			pool, err := certPool(s.dir)
			if err != nil {
				continue // not written yet
			}
			s.client = newClient(pool)
		}
		resp, err := s.client.Get(s.url + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("/readyz did not answer 200 within %v", timeout)
}

// certPool holds the self-signed certificate of the data directory dir.
func certPool(dir string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("tls/cert.pem holds no certificate")
	}
	return pool, nil
}

// newClient is an HTTPS client that trusts only the roots in pool and
// speaks TLS 1.3, HTTP/2 when the server offers it.
func newClient(pool *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// forbid records a secret that must never appear in the server's log.
func (s *serveProc) forbid(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, secret)
}

func (s *serveProc) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// stop sends SIGTERM, waits for serve to exit, and checks that it exited 0
// and that its log holds no secret. It may be called more than once.
func (s *serveProc) stop() {
	s.stopOnce.Do(func() {
		t := s.t
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("attest serve: SIGTERM: %v", err)
		}
		select {
		case <-s.exited:
		case <-time.After(45 * time.Second):
			s.kill()
			t.Errorf("attest serve did not stop within 45s of SIGTERM")
		}
		log := s.stderr.String()
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("attest serve exited with code %d, want 0; stderr:\n%s", code, log)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sec := range s.secrets {
			if strings.Contains(log, sec) {
				t.Errorf("attest serve's log contains the secret of an API key (%.6s...)", sec)
			}
		}
		if m := passwordRE.FindString(log); m != "" {
			t.Errorf("attest serve's log contains a password value: %q", m)
		}
	})
}

// send makes one API request; hdr adds headers. It does not fail the test,
// so that goroutines may call it.
func (s *serveProc) send(method, path, key string, hdr map[string]string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// call makes one API request and fails the test unless it answers want.
func (s *serveProc) call(t *testing.T, method, path, key string, hdr map[string]string, body []byte,
	want int) []byte {
	t.Helper()
	status, b, err := s.send(method, path, key, hdr, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, status, want, b)
	}
	return b
}

// ingestResponse is the answer of POST /api/v1/audit/events.
type ingestResponse struct {
	Accepted  int            `json:"accepted"`
	Duplicate int            `json:"duplicate"`
	Rejected  int            `json:"rejected"`
	Results   []ingestResult `json:"results"`
}

type ingestResult struct {
	Index    int    `json:"index"`
	Status   string `json:"status"`
	ID       string `json:"id"`
	Sequence *int64 `json:"sequence"`
	Error    *struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// ndjsonTo returns the headers of an NDJSON ingest request for an operator
// key sending to tenant, or for a tenant key when tenant is empty.
func ndjsonTo(tenant string) map[string]string {
	h := map[string]string{"Content-Type": "application/x-ndjson"}
	if tenant != "" {
		h["Attest-Tenant"] = tenant
	}
	return h
}

// ingest posts NDJSON events and fails the test unless all are accepted.
func (s *serveProc) ingest(t *testing.T, key, tenant string, body []byte) ingestResponse {
	t.Helper()
	b := s.call(t, "POST", "/api/v1/audit/events", key, ndjsonTo(tenant), body, http.StatusOK)
	var resp ingestResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("decode ingest answer: %v; body: %s", err, b)
	}
	if resp.Rejected != 0 || resp.Duplicate != 0 {
		t.Fatalf("ingest: %d rejected, %d duplicate, want none; body: %.1000s",
			resp.Rejected, resp.Duplicate, b)
	}
	return resp
}

// testEvent is an event in attest's producer schema.
type testEvent struct {
	ID         string      `json:"id,omitempty"`
	OccurredAt string      `json:"occurred_at"`
	Source     string      `json:"source"`
	Actor      testActor   `json:"actor"`
	Action     string      `json:"action"`
	Category   string      `json:"category"`
	Outcome    testOutcome `json:"outcome"`
}

type testActor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type testOutcome struct {
	Result string `json:"result"`
}

// newEvent is an event that occurred a minute ago.
func newEvent(source, action, category, result string) testEvent {
	return testEvent{OccurredAt: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), Source: source,
		Actor: testActor{Type: "user", ID: "u1"}, Action: action, Category: category,
		Outcome: testOutcome{Result: result}}
}

// events is n successful data_access events of source and action.
func events(n int, source, action string) []testEvent {
	evs := make([]testEvent, n)
	for i := range evs {
		evs[i] = newEvent(source, action, "data_access", "success")
	}
	return evs
}

// ndjson encodes events one per line.
func ndjson(t *testing.T, evs []testEvent) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// datasetFiles lists the *.json files of a shared dataset, without the
// derived-* files, and skips the test when the datasets are not there.
func datasetFiles(t *testing.T, name string) []string {
	t.Helper()
	root := filepath.Join("..", "..", "..", "shared", "datasets")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("the shared datasets are not available at %s: %v", root, err)
	}
	all, err := filepath.Glob(filepath.Join(root, name, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		if !strings.HasPrefix(filepath.Base(f), "derived-") {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Skipf("dataset %s has no *.json files under %s", name, root)
	}
	return files
}

// importCounts are the numbers of an import's total line.
type importCounts struct {
	Records, Imported, Present, Rejected int
}

var totalRE = regexp.MustCompile(
	`(?m)^total: (\d+) records: (\d+) imported, (\d+) already present, (\d+) rejected$`)

// importTotal reads the total line of attest import's output.
func importTotal(t *testing.T, r result) importCounts {
	t.Helper()
	m := totalRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("attest import printed no total line; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return importCounts{Records: n[0], Imported: n[1], Present: n[2], Rejected: n[3]}
}
