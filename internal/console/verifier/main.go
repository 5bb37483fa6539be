//go:build js && wasm

// Command verifier is the console's inclusion-proof verifier, compiled to
// WebAssembly (go generate in ../ writes assets/verify.wasm). It defines
// one JavaScript function, attestVerifyInclusion(json) -> json, which takes
// an inclusion.Input and answers an inclusion.Result, and then waits for
// calls for as long as the page lives.
package main

import (
	"syscall/js"

	"github.com/attest/attest/internal/console/inclusion"
)

func main() {
	js.Global().Set("attestVerifyInclusion", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 1 || args[0].Type() != js.TypeString {
			return string(inclusion.VerifyJSON(nil))
		}
		return string(inclusion.VerifyJSON([]byte(args[0].String())))
	}))
	select {}
}
