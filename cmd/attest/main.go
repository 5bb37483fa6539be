// Command attest is the SOC 2 audit trail and control plane. See README.md.
package main

import (
	"os"

	"github.com/attest/attest/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
