package console

// The browser's inclusion-proof verifier is Go compiled to WebAssembly,
// committed with the loader the Go release ships for it. Regenerate both
// after changing the verifier, its dependencies or the Go release; the
// test TestVerifierIsCurrent says when they are out of date. The flags
// make the build reproducible: no file paths, no symbol table, no
// version-control stamp that would change with every commit.
//
// verifier.goversion names the Go release that built them: another
// release builds other bytes.
//
//go:generate env GOOS=js GOARCH=wasm go build -trimpath -buildvcs=false -ldflags=-s -o assets/verify.wasm ./verifier
//go:generate cp $GOROOT/lib/wasm/wasm_exec.js assets/wasm_exec.js
//go:generate sh -c "go env GOVERSION > verifier.goversion"
