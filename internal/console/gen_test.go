package console_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestVerifierIsCurrent builds the WebAssembly verifier as go generate
// does, into a temporary directory, and checks that the committed
// assets/verify.wasm is exactly that, and assets/wasm_exec.js the loader
// of the Go release building it: the browser runs what the sources say.
func TestVerifierIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the verifier: skipped in -short mode")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on the PATH: cannot rebuild the verifier to compare it with assets/verify.wasm")
	}
	// The build runs in a child process, which go test's cache does not
	// watch: reading the sources of attest's packages it compiles, and
	// go.sum for the others, makes a change to them run the test again
	// rather than answer a cached pass.
	list := exec.Command(goBin, "list", "-deps", "-f",
		`{{if not .Standard}}{{if not .Module}}{{else if .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}
{{end}}{{end}}{{end}}`, "./verifier")
	list.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=")
	srcs, err := list.Output()
	if err != nil {
		t.Fatalf("go list ./verifier: %v", err)
	}
	files := strings.Fields(string(srcs))
	if !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, "/verifier/main.go") }) {
		t.Fatalf("go list names the verifier's sources as %q", files)
	}
	for _, f := range append(files, "../../go.sum") {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "verify.wasm")
	build := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s", "-o", out, "./verifier")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./verifier: %v\n%s", err, b)
	}
	env, err := exec.Command(goBin, "env", "GOROOT", "GOVERSION").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	goroot, version, _ := strings.Cut(strings.TrimSpace(string(env)), "\n")
	// Another Go release builds other bytes from the same sources: the
	// comparison holds only under the release that built the committed
	// verifier, which CI runs and which requires it.
	recorded, err := os.ReadFile("verifier.goversion")
	if err != nil {
		t.Fatal(err)
	}
	if built := strings.TrimSpace(string(recorded)); built != version {
		msg := fmt.Sprintf("the committed verifier was built by %s, and this is %s: run go generate ./internal/console "+
			"to rebuild it with this release", built, version)
		if os.Getenv("ATTEST_REQUIRE_VERIFIER_CHECK") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, f := range []struct{ committed, built string }{
		{"assets/verify.wasm", out},
		{"assets/wasm_exec.js", filepath.Join(goroot, "lib", "wasm", "wasm_exec.js")},
	} {
		want, err := os.ReadFile(f.built)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f.committed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s (%d bytes) is not what %s makes of the sources (%d bytes): run go generate "+
				"./internal/console and commit the result", f.committed, len(got), version, len(want))
		}
	}
}
