// Package console is attest's web console: the pages a compliance
// officer, an analyst, a tenant admin or an auditor reads in a browser. It
// is static HTML, CSS and JavaScript embedded in the binary, with nothing
// loaded from elsewhere; the pages speak to the API with the browser's
// session cookie, and the server decides, as for every client, what each
// person may see and do.
package console

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
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
		h.Set("Cache-Control", "no-store")
		ct := types[path.Ext(name)]
		if ct == "" {
			ct = mime.TypeByExtension(path.Ext(name))
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	})
}
