package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/attest/attest/internal/server"
)

// selfAuditCost serves attest's API twice on the bench's instance, once as
// serve does and once without recording requests, and loads a cheap read
// (the latest checkpoint) on each with the same concurrent clients over
// HTTPS for the same time, alternating twice.
func (r *run) selfAuditCost(ctx context.Context) error {
	const clients, span = 32, 4 * time.Second
	type variant struct {
		name string
		url  string
		reqs int
		lat  []time.Duration
	}
	var vs []*variant
	for _, off := range []bool{false, true} {
		srv, err := server.New(r.in, server.Config{WithoutSelfAudit: off, WithoutRateLimits: true})
		if err != nil {
			return err
		}
		url, stop, err := serveTLS(srv.Handler(), r.cert)
		if err != nil {
			return err
		}
		defer stop()
		name := "with self audit"
		if off {
			name = "without self audit"
		}
		vs = append(vs, &variant{name: name, url: url})
	}
	for round := range 2 {
		for _, v := range vs {
			r.progress("reading the checkpoint %s from %d clients for %s (round %d of 2)", v.name, clients, span, round+1)
			n, lat, err := r.loadAPI(ctx, v.url+"/api/v1/audit/checkpoint", clients, span)
			if err != nil {
				return err
			}
			v.reqs += n
			v.lat = append(v.lat, lat...)
		}
	}
	for _, v := range vs {
		p50, _, p99 := percentiles(v.lat)
		r.add(Result{Name: "GET /api/v1/audit/checkpoint over HTTPS, " + v.name, Value: float64(v.reqs) / (2 * span.Seconds()),
			Unit: "requests/s", P50: p50, P99: p99, N: v.reqs})
	}
	return nil
}

// serveTLS serves h over TLS 1.3 on a loopback port until stop is called.
func serveTLS(h http.Handler, cert tls.Certificate) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, TLSConfig: server.TLSConfig(cert), ReadHeaderTimeout: 5 * time.Second}
	go srv.ServeTLS(ln, "", "")
	return "https://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// loadAPI sends GET requests with the reader key to url from n clients,
// each on its own connection, for span.
func (r *run) loadAPI(ctx context.Context, url string, n int, span time.Duration) (int, []time.Duration, error) {
	return load(ctx, url, nil, n, span, func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool},
			ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1}}
	}, func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+r.reader) })
}

// load sends requests to url from n clients, each with a client of its
// own from newClient, for span, and returns how many were answered with
// 200 and their latencies. The requests are GETs, or POSTs of body when it
// is set.
func load(ctx context.Context, url string, body []byte, n int, span time.Duration, newClient func() *http.Client,
	prepare func(*http.Request)) (int, []time.Duration, error) {
	method := "GET"
	if body != nil {
		method = "POST"
	}
	deadline := time.Now().Add(span)
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient()
			defer client.CloseIdleConnections()
			var lat []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				var rd io.Reader
				if body != nil {
					rd = bytes.NewReader(body)
				}
				req, _ := http.NewRequestWithContext(ctx, method, url, rd)
				if prepare != nil {
					prepare(req)
				}
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s %s: status %d", method, url, resp.StatusCode)
					return
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, nil, err
	}
	return len(all), all, nil
}
