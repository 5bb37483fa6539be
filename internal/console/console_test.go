package console_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/attest/attest/internal/console"
)

// TestPagesLoadNothingFromElsewhere reads every embedded file: none names
// another origin, and the page carries no inline script, style or event
// handler, which the policy would refuse to run anyway.
func TestPagesLoadNothingFromElsewhere(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	defer srv.Close()
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\son[a-z]+\s*=|style\s*=|javascript:`)
	for _, name := range []string{"/", "/assets/app.js", "/assets/app.css", "/assets/trail.js"} {
		resp, err := http.Get(srv.URL + name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", name, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != console.Policy {
			t.Errorf("GET %s: policy %q", name, csp)
		}
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			t.Errorf("%s names another origin", name)
		}
		if name == "/" && inline.Match(b) {
			t.Errorf("the page holds inline script, style or a handler: %s", inline.Find(b))
		}
	}
	for path, want := range map[string]string{"/": "text/html", "/assets/app.js": "javascript", "/assets/app.css": "text/css",
		"/assets/wasm_exec.js": "javascript", "/assets/verify.wasm": "application/wasm"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, want) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, want)
		}
	}
}

// TestPolicyRunsNoText checks the policy's sources one by one. It allows
// no 'unsafe-inline', 'unsafe-eval' or 'unsafe-hashes': nothing that runs
// text from a page or a response as script. It does allow
// 'wasm-unsafe-eval' in script-src alone, which lets the audit trail
// compile its WebAssembly proof verifier and permits no JavaScript eval.
func TestPolicyRunsNoText(t *testing.T) {
	wasm := false
	for _, directive := range strings.Split(console.Policy, ";") {
		fields := strings.Fields(directive)
		if len(fields) == 0 {
			t.Fatalf("an empty directive in %q", console.Policy)
		}
		for _, src := range fields[1:] {
			switch {
			case src == "'wasm-unsafe-eval'" && fields[0] == "script-src":
				wasm = true
			case strings.HasPrefix(src, "'unsafe-") || strings.Contains(src, "unsafe"):
				t.Errorf("%s allows %s", fields[0], src)
			case strings.Contains(src, ":") || src == "*":
				t.Errorf("%s allows another origin: %s", fields[0], src)
			}
		}
	}
	if !wasm {
		t.Errorf("script-src does not allow 'wasm-unsafe-eval': the proof verifier cannot compile")
	}
}

// TestOnlyItsOwnFiles checks that the handler answers its files and
// nothing else: no other path, no traversal, no hidden file, no POST.
func TestOnlyItsOwnFiles(t *testing.T) {
	h := console.Handler()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/assets/missing.js", http.StatusNotFound},
		{"GET", "/assets/../console.go", http.StatusNotFound},
		{"GET", "/assets/%2e%2e/console.go", http.StatusNotFound},
		{"GET", "/index.html", http.StatusNotFound},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"HEAD", "/", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

// TestEveryReferencedFileIsServed checks that each file the page names is
// embedded, so that a page never asks for what is not there.
func TestEveryReferencedFileIsServed(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllSubmatch(b, -1)
	if len(refs) == 0 {
		t.Fatal("the page names no file")
	}
	for _, m := range refs {
		r, err := http.Get(srv.URL + string(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", m[1], r.StatusCode)
		}
	}
}

// TestVerifierGzipped checks that the verifier goes compressed to a client
// that takes gzip, whole once inflated, and plain to one that does not.
func TestVerifierGzipped(t *testing.T) {
	h := console.Handler()
	get := func(enc string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/assets/verify.wasm", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		h.ServeHTTP(rec, req)
		return rec
	}
	plain := get("")
	if plain.Code != http.StatusOK || plain.Header().Get("Content-Encoding") != "" ||
		!bytes.HasPrefix(plain.Body.Bytes(), []byte("\x00asm")) {
		t.Fatalf("without gzip: %d %q", plain.Code, plain.Header().Get("Content-Encoding"))
	}
	if refused := get("gzip;q=0, br"); refused.Header().Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 was answered %q", refused.Header().Get("Content-Encoding"))
	}
	z := get("gzip, deflate, br")
	if z.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(z.Header().Get("Vary"), "Accept-Encoding") {
		t.Fatalf("with gzip: encoding %q, vary %q", z.Header().Get("Content-Encoding"), z.Header().Get("Vary"))
	}
	size := z.Body.Len()
	zr, err := gzip.NewReader(z.Body)
	if err != nil {
		t.Fatal(err)
	}
	inflated, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(inflated, plain.Body.Bytes()) {
		t.Fatalf("the gzip form inflates to %d bytes (%v), want the %d of the file", len(inflated), err, plain.Body.Len())
	}
	t.Logf("verify.wasm: %d bytes, %d gzipped", plain.Body.Len(), size)
}

// TestFilesRevalidate checks that each file carries an entity tag, that a
// browser asking with it gets 304 and no body, and that the gzip form of
// the verifier has a tag of its own.
func TestFilesRevalidate(t *testing.T) {
	h := console.Handler()
	get := func(path, enc, match string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		if match != "" {
			req.Header.Set("If-None-Match", match)
		}
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, p := range []string{"/", "/assets/app.js", "/assets/verify.wasm"} {
		first := get(p, "", "")
		tag := first.Header().Get("ETag")
		if tag == "" || first.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: ETag %q, Cache-Control %q", p, tag, first.Header().Get("Cache-Control"))
		}
		if again := get(p, "", tag); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("%s with its tag: %d and %d bytes, want 304 and none", p, again.Code, again.Body.Len())
		}
		if other := get(p, "", `"other"`); other.Code != http.StatusOK {
			t.Errorf("%s with another tag: %d", p, other.Code)
		}
	}
	plain := get("/assets/verify.wasm", "", "").Header().Get("ETag")
	if z := get("/assets/verify.wasm", "gzip", "").Header().Get("ETag"); z == plain {
		t.Errorf("the gzip form shares the plain tag %s", z)
	}
}
