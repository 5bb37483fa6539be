package capture_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attest/attest/capture"
	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/tenant"
)

// attestServer is a real attest on a SQLite data directory, serving TLS on
// a loopback listener made before it starts, so that a client can be
// pointed at it while it is still down.
type attestServer struct {
	t      testing.TB
	dir    string
	ln     net.Listener
	url    string
	caFile string
	key    string
	in     *instance.Instance
	stop   func()
	// cfg is the server's configuration, which serve completes.
	cfg server.Config
}

// quiet drops attest's operational messages, which would cut into the
// benchmark lines.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newAttest(t testing.TB) *attestServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &attestServer{t: t, dir: t.TempDir(), ln: ln, url: "https://" + ln.Addr().String()}
	ctx := context.Background()
	a.in, err = instance.Open(ctx, instance.Options{DataDir: a.dir, Name: "capture.test/attest",
		Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.in.Close() })
	dt, err := a.in.Tenants.ByName(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.in.CreateKey(ctx, dt, access.RoleIngest, "capture", time.Time{}, instance.SystemActor(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.key = tok.Reveal()
	// The certificate is made now, so that the client trusts it before
	// the server answers.
	if _, _, err := server.LoadCertificate("", "", a.dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.caFile = filepath.Join(a.dir, "tls", "cert.pem")
	return a
}

// serve starts answering on the listener.
func (a *attestServer) serve() {
	a.t.Helper()
	cert, _, err := server.LoadCertificate("", "", a.dir, time.Now())
	if err != nil {
		a.t.Fatal(err)
	}
	cfg := a.cfg
	cfg.CheckpointInterval, cfg.Logger = 50*time.Millisecond, quiet
	srv, err := server.New(a.in, cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, a.ln, cert) }()
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				a.t.Errorf("attest stopped with %v", err)
			}
		})
	}
	a.t.Cleanup(a.stop)
}

// events returns the default tenant's events of action, newest first.
func (a *attestServer) events(action string) []*auditlog.Record {
	a.t.Helper()
	ctx := context.Background()
	dt, _ := a.in.Tenants.ByName(ctx, tenant.Default)
	var all []*auditlog.Record
	f := auditlog.Filter{Action: action, Limit: 500}
	for {
		p, err := a.in.Log.Query(ctx, dt, f)
		if err != nil {
			a.t.Fatal(err)
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all
		}
		f.Cursor = p.Next
	}
}

func (a *attestServer) client(t testing.TB, dir string, mod func(*capture.Config)) *capture.Client {
	t.Helper()
	cfg := capture.Config{URL: a.url, APIKey: a.key, Source: "voice-api", BufferDir: dir, CAFile: a.caFile,
		FlushInterval: 20 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Timeout: 500 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := capture.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMiddlewareRecordsRequests(t *testing.T) {
	a := newAttest(t)
	a.serve()
	c := a.client(t, t.TempDir(), func(cfg *capture.Config) {
		cfg.OnRejected = func(ev []byte, field, reason string) { t.Errorf("rejected on %s: %s: %.200s", field, reason, ev) }
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /calls/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "call") })
	mux.HandleFunc("DELETE /calls/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	h := capture.Middleware(c, capture.Options{Actor: func(r *http.Request) capture.Actor {
		return capture.Actor{Type: "user", ID: r.Header.Get("X-User")}
	}})(mux)
	svc := httptest.NewServer(h)
	defer svc.Close()
	for i := range 40 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/calls/%d", svc.URL, i), nil)
		req.Header.Set("X-User", "u-7")
		req.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("DELETE", svc.URL+"/calls/3", nil)
	req.Header.Set("X-User", "u-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A path attest's schema cannot hold as sent (a control character,
	// more than 2048 bytes) is still recorded, cleaned.
	resp, err = http.Get(svc.URL + "/x%01y/" + strings.Repeat("p", 3000))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A method no action can hold, and a handler that panics, are
	// recorded all the same.
	for _, m := range []string{"FOO+BAR", strings.Repeat("M", 300)} {
		req, _ := http.NewRequest(m, svc.URL+"/calls/1", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	if resp, err := http.Get(svc.URL + "/panic"); err == nil {
		resp.Body.Close()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Recorded != 45 || st.Sent != 45 || st.Buffered != 0 || st.Dropped != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v, want 45 recorded and sent", st)
	}
	if other := a.events("http.other"); len(other) != 2 || other[0].Event.Request.Method != "" {
		t.Errorf("odd methods: %+v", other)
	}
	var panicked bool
	for _, r := range a.events("http.get") {
		if r.Event.Target.ID == "GET /panic" {
			panicked = r.Event.Outcome.Result == "error" && r.Event.Request.Status == 500
		}
	}
	if !panicked {
		t.Error("the request whose handler panicked is not recorded as an error")
	}
	gets := a.events("http.get")
	if len(gets) != 42 {
		t.Fatalf("attest holds %d http.get events, want 42", len(gets))
	}
	gets = gets[1:] // the panic
	if p := gets[0].Event.Request.Path; len(p) > 2048 || !strings.HasPrefix(p, "/x\uFFFDy/") || gets[0].Event.Outcome.Result != "failure" {
		t.Errorf("the odd path was recorded as %.40q, outcome %s", p, gets[0].Event.Outcome.Result)
	}
	ev := gets[1].Event
	if ev.Actor.ID != "u-7" || ev.Actor.IP != "127.0.0.1" || ev.Target.Type != "http_route" || ev.Target.ID != "GET /calls/{id}" ||
		ev.Category != "data_access" || ev.Outcome.Result != "success" || ev.Request.Status != 200 || ev.Source.Name != "voice-api" {
		t.Errorf("recorded %+v", ev)
	}
	del := a.events("http.delete")
	if len(del) != 1 || del[0].Event.Outcome.Result != "denied" || del[0].Event.Category != "data_change" {
		t.Errorf("the denied delete: %+v", del)
	}
}

// TestOutageLosesNothing records while attest is down, closes the client,
// and starts another on the same buffer directory once attest is up: every
// event arrives once.
func TestOutageLosesNothing(t *testing.T) {
	a := newAttest(t)
	dir := t.TempDir()
	var errs int
	var mu sync.Mutex
	c := a.client(t, dir, func(cfg *capture.Config) {
		cfg.OnError = func(error) { mu.Lock(); errs++; mu.Unlock() }
		cfg.Timeout = 200 * time.Millisecond
	})
	for i := range 300 {
		if err := c.Record(capture.Event{ID: fmt.Sprintf("out-%d", i), Actor: capture.Actor{Type: "user", ID: "u-1",
			Email: "ana@example.com"}, Action: "recording.read", Category: "data_access",
			Outcome: capture.Outcome{Result: "success"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded with attest down")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Buffered != 300 || st.Sent != 0 || st.Failures == 0 {
		t.Fatalf("after the outage: %+v", st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if len(files) == 0 {
		t.Fatal("nothing buffered on disk")
	}

	a.serve()
	c2 := a.client(t, dir, nil)
	if st := c2.Stats(); st.Buffered != 300 {
		t.Errorf("the new client found %d buffered events, want 300", st.Buffered)
	}
	if err := c2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if st := c2.Stats(); st.Sent != 300 || st.Buffered != 0 {
		t.Errorf("after attest came back: %+v", st)
	}
	if got := len(a.events("recording.read")); got != 300 {
		t.Errorf("attest holds %d events, want 300", got)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("sent batches left on disk: %v", files)
	}
	// Sending a batch again, as after a lost answer, stores nothing twice.
	c3 := a.client(t, t.TempDir(), nil)
	c3.Record(capture.Event{ID: "out-5", Actor: capture.Actor{Type: "user", ID: "u-1", Email: "ana@example.com"},
		Action: "recording.read", Category: "data_access", Outcome: capture.Outcome{Result: "success"}})
	c3.Close()
	if st := c3.Stats(); st.Duplicates+st.Rejected != 1 || len(a.events("recording.read")) != 300 {
		t.Errorf("an event sent twice: %+v", st)
	}
}

// TestFullBufferIsReported fills a small buffer while attest is down: each
// event Record refuses is counted, and every one it took arrives later.
func TestFullBufferIsReported(t *testing.T) {
	a := newAttest(t)
	dir := t.TempDir()
	c := a.client(t, dir, func(cfg *capture.Config) { cfg.MaxBufferBytes = 16 << 10; cfg.Timeout = 200 * time.Millisecond })
	taken, refused := 0, 0
	for i := range 400 {
		err := c.Record(capture.Event{ID: fmt.Sprintf("full-%d", i), Actor: capture.Actor{Type: "service", ID: "svc"},
			Action: "job.run", Category: "system", Outcome: capture.Outcome{Result: "success"}})
		switch {
		case errors.Is(err, capture.ErrBufferFull):
			refused++
		case err != nil:
			t.Fatal(err)
		default:
			taken++
		}
	}
	c.Close()
	st := c.Stats()
	if refused == 0 || st.Dropped != int64(refused) || st.Recorded != int64(taken) || st.Buffered != int64(taken) {
		t.Fatalf("taken %d, refused %d, stats %+v", taken, refused, st)
	}
	a.serve()
	c2 := a.client(t, dir, nil)
	if err := c2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if got := len(a.events("job.run")); got != taken {
		t.Errorf("attest holds %d events, want the %d taken", got, taken)
	}
}

// TestBatchTooLarge sends batches larger than attest takes: they are split
// until they fit, and nothing is lost or stuck.
func TestBatchTooLarge(t *testing.T) {
	a := newAttest(t)
	a.cfg.MaxEvents = 100
	a.serve()
	c := a.client(t, t.TempDir(), func(cfg *capture.Config) { cfg.BatchSize = 500 })
	for i := range 600 {
		c.Record(capture.Event{ID: fmt.Sprintf("big-%d", i), Actor: capture.Actor{Type: "service", ID: "svc"},
			Action: "job.run", Category: "system", Outcome: capture.Outcome{Result: "success"}})
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if st := c.Stats(); st.Sent != 600 || st.Buffered != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
	if got := len(a.events("job.run")); got != 600 {
		t.Errorf("attest holds %d events, want 600", got)
	}
}

func TestRejectedEventsAreReported(t *testing.T) {
	a := newAttest(t)
	a.serve()
	type rejection struct{ field, reason string }
	var got []rejection
	var mu sync.Mutex
	c := a.client(t, t.TempDir(), func(cfg *capture.Config) {
		cfg.OnRejected = func(_ []byte, field, reason string) {
			mu.Lock()
			got = append(got, rejection{field, reason})
			mu.Unlock()
		}
	})
	ok := capture.Event{Actor: capture.Actor{Type: "user", ID: "u"}, Action: "a.b", Category: "data_access",
		Outcome: capture.Outcome{Result: "success"}}
	bad := ok
	bad.Action = "not an action"
	c.Record(ok)
	c.Record(bad)
	c.Close()
	if st := c.Stats(); st.Sent != 1 || st.Rejected != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(got) != 1 || got[0].field != "action" {
		t.Errorf("rejections %+v, want one on action", got)
	}
}

// TestEncoding sends text that needs escaping and details spread over
// lines: attest stores them as given. A control character, which attest
// refuses in a text field, is reported on its field.
func TestEncoding(t *testing.T) {
	a := newAttest(t)
	a.serve()
	var rejected []string
	c := a.client(t, t.TempDir(), func(cfg *capture.Config) {
		cfg.OnRejected = func(_ []byte, field, _ string) { rejected = append(rejected, field) }
	})
	name := "Ana \"Quote\" O'Neil \\ \u2028\u00e9\U0001F600 </script>"
	err := c.Record(capture.Event{Actor: capture.Actor{Type: "user", ID: "u-enc", Name: name}, Action: "note.write",
		Category: "data_change", Outcome: capture.Outcome{Result: "failure", Reason: "line one; line \"two\""},
		Target:  &capture.Target{Type: "note", ID: "n\\1", Name: "Ünïcode"},
		Request: &capture.Request{Method: "POST", Path: "/notes", Status: 422, DurationMs: 1.25},
		Details: json.RawMessage("{\n  \"tags\": [1, 2],\n  \"ok\": true\n}")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record(capture.Event{Actor: capture.Actor{Type: "user"}, Action: "a.b", Category: "system",
		Outcome: capture.Outcome{Result: "success"}, Details: json.RawMessage("{not json")}); err == nil {
		t.Error("Record took details that are not JSON")
	}
	c.Record(capture.Event{Actor: capture.Actor{Type: "user", ID: "u-enc", Name: "two\nlines"}, Action: "note.write",
		Category: "data_change", Outcome: capture.Outcome{Result: "success"}})
	c.Close()
	evs := a.events("note.write")
	if len(evs) != 1 {
		t.Fatalf("stored %d events, want 1; stats %+v", len(evs), c.Stats())
	}
	ev := evs[0].Event
	if ev.Actor.Name != name || ev.Outcome.Reason != "line one; line \"two\"" || ev.Target.ID != "n\\1" || ev.Target.Name != "Ünïcode" ||
		ev.Request.Status != 422 || ev.Request.DurationMicros != 1250 || string(ev.Details) != `{"ok":true,"tags":[1,2]}` {
		t.Errorf("stored %+v, details %s", ev, ev.Details)
	}
	if len(rejected) != 1 || rejected[0] != "actor.name" {
		t.Errorf("rejections %v, want one on actor.name", rejected)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []capture.Config{
		{APIKey: "k", Source: "s", BufferDir: "d"},
		{URL: "http://x", APIKey: "k", Source: "s", BufferDir: "d"},
		{URL: "https://x", Source: "s", BufferDir: "d"},
		{URL: "https://x", APIKey: "k", Source: "s"},
		{URL: "https://x", APIKey: "k", Source: "s", BufferDir: t.TempDir(), CAFile: filepath.Join(t.TempDir(), "none.pem")},
	} {
		if _, err := capture.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := os.Stat("d"); err == nil {
		t.Error("a refused configuration created its buffer directory")
	}
}
