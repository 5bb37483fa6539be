// Package console is attest's web console: the pages a compliance
// officer, an analyst, a tenant admin or an auditor reads in a browser. It
// is static HTML, CSS and JavaScript embedded in the binary, with nothing
// loaded from elsewhere; the pages speak to the API with the browser's
// session cookie, and the server decides, as for every client, what each
// person may see and do.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed assets
var assets embed.FS

// Policy is the Content-Security-Policy of every page: scripts, styles
// and images from attest alone, none inline, requests to attest alone, no
// framing, no forms posting elsewhere. 'wasm-unsafe-eval' lets a page
// compile WebAssembly, which the audit trail's proof verifier is (from
// attest's own /assets/verify.wasm, as connect-src allows no other); it
// does not allow eval, new Function or any other way of running text as
// JavaScript, which 'unsafe-eval' would.
const Policy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// types are the media types of the files served, set here rather than
// taken from the system's table, which may lack one: WebAssembly must be
// application/wasm for the browser to compile it as it downloads.
var types = map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8", ".wasm": "application/wasm"}

// Handler serves the console: the page at / and its files under /assets/.
func Handler() http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := "index.html"
		if p, ok := strings.CutPrefix(r.URL.Path, "/assets/"); ok {
			name = p
		} else if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(files, name)
		if err != nil || !fs.ValidPath(name) || strings.HasPrefix(path.Base(name), ".") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", Policy)
		// The files hold nothing secret: a browser keeps them, and asks
		// each time whether they changed, which a new binary's do.
		h.Set("Cache-Control", "no-cache")
		tag := etag(name, b)
		ct := types[path.Ext(name)]
		if ct == "" {
			ct = mime.TypeByExtension(path.Ext(name))
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		// The verifier is the one large file: a browser that takes gzip
		// gets it compressed, about a quarter of its size.
		if path.Ext(name) == ".wasm" {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r) {
				if z, err := gzipped(name, b); err == nil {
					b, tag = z, strings.TrimSuffix(tag, `"`)+`-gzip"`
					h.Set("Content-Encoding", "gzip")
				}
			}
		}
		h.Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	})
}

// tags keeps each file's entity tag, its SHA-256, worked out once.
var tags sync.Map

func etag(name string, b []byte) string {
	if t, ok := tags.Load(name); ok {
		return t.(string)
	}
	sum := sha256.Sum256(b)
	t := `"` + hex.EncodeToString(sum[:16]) + `"`
	tags.Store(name, t)
	return t
}

// acceptsGzip reports whether the request's Accept-Encoding names gzip
// with a weight above zero.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// compressed keeps each file's gzip form, made once.
var compressed sync.Map

func gzipped(name string, b []byte) ([]byte, error) {
	if z, ok := compressed.Load(name); ok {
		return z.([]byte), nil
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed.Store(name, buf.Bytes())
	return buf.Bytes(), nil
}
