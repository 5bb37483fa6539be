package capture_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/attest/attest/capture"
)

// BenchmarkHandler times a small handler served plain and through the
// middleware, which records each request into a client sending to a real
// attest on loopback TLS. The captured figure includes the event's
// encoding in the request path; the batches are sent in the background.
func BenchmarkHandler(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	})
	run := func(b *testing.B, h http.Handler) {
		req := httptest.NewRequest("GET", "/calls/42", nil)
		req.Header.Set("User-Agent", "bench/1.0")
		req.Header.Set("X-Request-Id", "req-1")
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, handler) })
	captured := func(b *testing.B, mod func(*capture.Config)) {
		a := newAttest(b)
		a.serve()
		cfg := capture.Config{URL: a.url, APIKey: a.key, Source: "voice-api", BufferDir: b.TempDir(), CAFile: a.caFile}
		if mod != nil {
			mod(&cfg)
		}
		c, err := capture.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		run(b, capture.Middleware(c, capture.Options{Actor: func(*http.Request) capture.Actor {
			return capture.Actor{Type: "user", ID: "u-1"}
		}})(handler))
		b.StopTimer()
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		if st := c.Stats(); st.Dropped != 0 || st.Rejected != 0 || st.Sent != st.Recorded {
			b.Fatalf("stats %+v", st)
		}
	}
	// Sending while the handler runs: attest, in this process, ingests
	// the batches on the same cores.
	b.Run("captured", func(b *testing.B) { captured(b, nil) })
	// The request path alone: the batches wait in memory until Close,
	// after the timer stops.
	b.Run("captured-path", func(b *testing.B) {
		captured(b, func(cfg *capture.Config) { cfg.BatchSize = 1 << 30; cfg.FlushInterval = time.Hour })
	})
}
