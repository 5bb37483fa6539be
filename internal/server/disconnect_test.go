package server_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/attest/attest/internal/tenant"
)

// abandon sends a request over HTTP/1.1 that promises a longer body than it
// sends, and hangs up.
func (ts *testServer) abandon(path, key, body string) {
	ts.t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ts.cert)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.url, "https://"),
		&tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		ts.t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"+
		"Content-Length: %d\r\n\r\n%s", path, key, 10*len(body), body)
	conn.Close()
}

// brokenBody sends part of a body, then fails.
type brokenBody struct{ part io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	if n, err := b.part.Read(p); err == nil {
		return n, nil
	}
	return 0, errors.New("the client gives up")
}

func TestClientDisconnects(t *testing.T) {
	_, opts := storetest.OpenSQLite(t)
	var logs syncBuffer
	ts := start(t, opts, server.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ing, admin := ts.key(tenant.Default, "ingest"), ts.key(tenant.Default, "admin")
	ts.abandon("/api/v1/audit/events", ing, "["+event("", "a.b"))
	ts.abandon("/api/v1/apikeys", admin, `{"role":`)

	// Over HTTP/2 the stream is reset.
	req, _ := http.NewRequest("POST", ts.url+"/api/v1/audit/events",
		&brokenBody{strings.NewReader("[" + event("", "a.b"))})
	req.Header.Set("Authorization", "Bearer "+ing)
	if resp, err := ts.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a request whose body failed was answered %s", resp.Status)
	}

	// Where the client went away before its key was checked, the request
	// is the operator's, as every unauthenticated one is.
	closed := func(action string) int {
		n := 0
		for _, tn := range []string{tenant.Default, tenant.Operator} {
			b := ts.trail(tn, "&outcome=failure&action="+action)
			n += bytes.Count(b, []byte(`"outcome":{"reason":"the client disconnected before the request was complete",`+
				`"result":"failure","status":499}`))
		}
		return n
	}
	for _, tc := range []struct {
		action string
		want   int
	}{{"audit.events.ingest", 2}, {"apikey.create", 1}} {
		n := closed(tc.action)
		for deadline := time.Now().Add(5 * time.Second); n < tc.want && time.Now().Before(deadline); n = closed(tc.action) {
			time.Sleep(20 * time.Millisecond)
		}
		if n != tc.want {
			t.Errorf("%s: %d events record a client that went away, want %d", tc.action, n, tc.want)
		}
	}
	out := logs.String()
	if strings.Count(out, `"msg":"client disconnected"`) < 3 || !strings.Contains(out, `"level":"INFO","msg":"client disconnected"`) {
		t.Errorf("the disconnects are not logged at level INFO:\n%s", out)
	}
	if strings.Contains(out, `"level":"ERROR"`) {
		t.Errorf("a disconnect is logged as an error:\n%s", out)
	}
}
