package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/attest/attest/internal/controls"
)

func cmdControls(e *env, args []string) int {
	const use = "usage: attest controls validate [--tenant T] [--control ID,...] [--output text|json]"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 || args[0] != "validate" {
		return usageErr(e, use)
	}
	var sf storeFlags
	var tenantName, only, output string
	fs := newFlags(e, "controls validate")
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "operator", "the tenant whose state the controls judge")
	fs.StringVar(&only, "control", "", "comma-separated control ids; empty runs every control")
	fs.StringVar(&output, "output", "text", "output: text or json")
	if err := fs.parse(args[1:]); err != nil {
		return parseExit(err)
	}
	if output != "text" && output != "json" {
		return usageErr(e, "--output must be text or json")
	}
	var ids []string
	for _, id := range strings.Split(only, ",") {
		if id = strings.TrimSpace(id); id != "" {
			if _, ok := controls.ByID(id); !ok {
				return usageErr(e, "--control: no control %q", id)
			}
			ids = append(ids, id)
		}
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	defer publish(ctx, in)
	res, err := controls.Validate(ctx, in, t, ids, hostActor(), hostDecorate("controls validate"))
	if err != nil {
		return fail(e, "validate: %v", err)
	}
	if output == "json" {
		json.NewEncoder(e.stdout).Encode(map[string]any{"tenant": t.Name, "results": res})
	} else {
		exs, err := controls.Exceptions(ctx, in, t)
		if err != nil {
			return fail(e, "validate: %v", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONTROL\tSTATUS\tFINDINGS\tREMEDIATION")
		for _, r := range res {
			st := string(r.Status)
			if x := controls.ActiveException(exs, r.Control, in.Now()); x != nil && r.Status != controls.Pass {
				st += " (excepted until " + x.ExpiresAt.Format("2006-01-02") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Control, st, len(r.Findings), r.Remediation)
		}
		tw.Flush()
	}
	// The exit code tells whether every control passed.
	for _, r := range res {
		if r.Status != controls.Pass {
			return exitProblem
		}
	}
	return exitOK
}
