package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// TestMain lets a test run attest serve in a child process of its own: the
// test binary re-executes itself with ATTEST_TEST_CHILD set.
func TestMain(m *testing.M) {
	if os.Getenv("ATTEST_TEST_CHILD") == "1" {
		var args []string
		json.Unmarshal([]byte(os.Getenv("ATTEST_TEST_ARGS")), &args)
		os.Exit(Main(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is attest serve running in another process.
type child struct {
	cmd    *exec.Cmd
	url    string
	client *http.Client
	key    string
	stderr *bytes.Buffer
}

var keyPattern = regexp.MustCompile(`atk_[a-z0-9]+_[a-z0-9]+`)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startChild starts serve on opts and waits until it is ready. key is the
// bootstrap key when known from an earlier start.
func startChild(t *testing.T, opts storetest.Options, addr, key string) *child {
	t.Helper()
	args := []string{"serve", "--data-dir", opts.DataDir, "--addr", addr, "--log-level", "warn"}
	if opts.URL != "" {
		args = append(args, "--database-url", opts.URL)
	}
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ATTEST_TEST_CHILD=1", "ATTEST_TEST_ARGS="+string(a))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, url: "https://" + addr, key: key, stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	keys := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if k := keyPattern.FindString(sc.Text()); k != "" {
				keys <- k
			}
		}
	}()
	if c.key == "" {
		select {
		case c.key = <-keys:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("serve printed no bootstrap key; stderr: %s", c.stderr)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pem, err := os.ReadFile(filepath.Join(opts.DataDir, "tls", "cert.pem"))
		if err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			c.client = &http.Client{Timeout: 30 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
			if resp, err := c.client.Get(c.url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("serve did not become ready; stderr: %s", c.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	c.cmd.Process.Signal(sig)
	err := c.cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		t.Fatalf("serve exited with %v after SIGTERM; stderr: %s", err, c.stderr)
	}
}

// TestCrashDuringBulkImport kills the server with SIGKILL while clients send
// bulk imports, restarts it, and checks that every event it acknowledged is
// in the log and that the log verifies.
func TestCrashDuringBulkImport(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		addr := freeAddr(t)
		c := startChild(t, opts, addr, "")

		type ack struct {
			id  string
			seq int64
		}
		var mu sync.Mutex
		var acked []ack
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for batch := 0; ctx.Err() == nil; batch++ {
					var body strings.Builder
					ids := make([]string, 2000)
					for i := range ids {
						ids[i] = fmt.Sprintf("crash-%d-%d-%d", w, batch, i)
						fmt.Fprintf(&body, `{"id":%q,"occurred_at":%q,"source":"loadgen","actor":{"type":"service","id":"svc-%d","ip":"10.0.0.%d"},`+
							`"action":"call.create","category":"data_change","outcome":{"result":"success"},"target":{"type":"call","id":"c-%d"}}`+"\n",
							ids[i], time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano), w, i%250, i)
					}
					req, _ := http.NewRequestWithContext(ctx, "POST", c.url+"/api/v1/audit/events", strings.NewReader(body.String()))
					req.Header.Set("Authorization", "Bearer "+c.key)
					req.Header.Set("Attest-Tenant", tenant.Default)
					req.Header.Set("Content-Type", "application/x-ndjson")
					resp, err := c.client.Do(req)
					if err != nil {
						return // the server is gone
					}
					var out struct {
						Results []struct {
							ID       string
							Status   string
							Sequence int64
						}
					}
					derr := json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || derr != nil {
						return
					}
					mu.Lock()
					for _, r := range out.Results {
						if r.Status == "accepted" {
							acked = append(acked, ack{r.ID, r.Sequence})
						}
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(2 * time.Second)
		c.stop(t, syscall.SIGKILL)
		cancel()
		wg.Wait()
		if len(acked) == 0 {
			t.Fatalf("no event was acknowledged before the crash; stderr: %s", c.stderr)
		}

		// The restarted server recovers and takes more events.
		c = startChild(t, opts, addr, c.key)
		resp, err := c.client.Do(mustRequest(t, "POST", c.url+"/api/v1/audit/events", c.key,
			`{"occurred_at":"`+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)+`","source":"after","actor":{"type":"system"},`+
				`"action":"restart.check","category":"system","outcome":{"result":"success"}}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after restart, ingest answers %d", resp.StatusCode)
		}
		c.stop(t, syscall.SIGTERM)

		in, err := instance.Open(context.Background(), instance.Options{DataDir: opts.DataDir, DatabaseURL: opts.URL})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		ctx2 := context.Background()
		def, _ := in.Tenants.ByName(ctx2, tenant.Default)
		err = in.DB.ReadTx(ctx2, func(tx *sql.Tx) error {
			for _, a := range acked {
				rec, err := in.Log.Read(ctx2, tx, def, a.seq)
				if err != nil {
					return fmt.Errorf("acknowledged event %s at %d: %w", a.id, a.seq, err)
				}
				if rec.Event.ID != a.id {
					return fmt.Errorf("sequence %d holds %s, but %s was acknowledged there", a.seq, rec.Event.ID, a.id)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, ten := range []string{tenant.Default, tenant.Operator} {
			tt, _ := in.Tenants.ByName(ctx2, ten)
			rep, err := in.Log.Verify(ctx2, tt, auditlog.VerifyOptions{})
			if err != nil || rep.Problem != nil {
				t.Fatalf("verify %s after the crash: %v %v", ten, err, rep.Problem)
			}
		}
		t.Logf("%d events acknowledged before SIGKILL, all present; the log verifies", len(acked))
	})
}

func mustRequest(t *testing.T, method, url, key, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Attest-Tenant", tenant.Default)
	return req
}
