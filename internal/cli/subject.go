package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/personal"
)

// cmdSubject acts on a data subject: an actor whose personal values a
// tenant's events hold.
func cmdSubject(e *env, args []string) int {
	const use = "usage: attest subject erase --tenant T --subject ACTOR_ID --reason TEXT"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 || args[0] != "erase" {
		return usageErr(e, use)
	}
	var sf storeFlags
	var tenantName, subject, reason, output string
	fs := newFlags(e, "subject erase")
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "", "tenant whose events hold the subject's personal values (required)")
	fs.StringVar(&subject, "subject", "", "the subject's actor id, exactly as its events give it (required)")
	fs.StringVar(&reason, "reason", "", "why, such as the request it answers; recorded in the audit trail (required)")
	fs.StringVar(&output, "output", "text", "output: text or json")
	if err := fs.parse(args[1:]); err != nil {
		return parseExit(err)
	}
	if tenantName == "" {
		return usageErr(e, "--tenant is required")
	}
	var ee *instance.ErasureError
	if err := instance.CheckErasure(subject, reason); errors.As(err, &ee) {
		return usageErr(e, "--%s: %s", ee.Field, ee.Reason)
	}
	if output != "text" && output != "json" {
		return usageErr(e, "--output must be text or json")
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	done, err := in.EraseSubject(ctx, t, subject, reason, hostActor(), hostDecorate("subject erase"))
	if errors.Is(err, personal.ErrUnknownSubject) {
		return fail(e, "tenant %s holds no personal values of subject %q: check the actor id", t.Name, subject)
	}
	if err != nil {
		return fail(e, "erase: %v", err)
	}
	publish(ctx, in)
	if output == "json" {
		json.NewEncoder(e.stdout).Encode(map[string]any{"tenant": t.Name, "subject": subject,
			"generations": done.Generations, "erased_at": done.ErasedAt.Format(time.RFC3339Nano)})
		return exitOK
	}
	if done.Generations == 0 {
		fmt.Fprintf(e.stdout, "subject %q of tenant %s was erased already, at %s; nothing more to destroy\n",
			subject, t.Name, done.ErasedAt.Format(time.RFC3339))
		return exitOK
	}
	fmt.Fprintf(e.stdout, "erased subject %q of tenant %s: %d key(s) destroyed; its personal values now read as erased, "+
		"and every hash and proof is unchanged\n", subject, t.Name, done.Generations)
	return exitOK
}
