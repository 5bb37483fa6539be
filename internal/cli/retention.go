package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

const retentionUse = `usage: attest retention run [--tenant T]
       attest retention show --tenant T
       attest retention set --tenant T [--retention-days N] [--hot-days N]
       attest retention hold --tenant T --reason TEXT
       attest retention release --tenant T --reason TEXT`

// cmdRetention applies and changes the retention of tenants' audit trails.
func cmdRetention(e *env, args []string) int {
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, retentionUse)
	}
	if len(args) == 0 {
		return usageErr(e, "%s", retentionUse)
	}
	switch args[0] {
	case "run":
		return retentionRun(e, args[1:])
	case "show", "set", "hold", "release":
		return retentionPolicy(e, args[0], args[1:])
	}
	return usageErr(e, "unknown subcommand %q\n%s", args[0], retentionUse)
}

func retentionRun(e *env, args []string) int {
	var sf storeFlags
	var tenantName, output string
	fs := newFlags(e, "retention run")
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "", "apply only this tenant's policy; empty means every tenant's")
	fs.StringVar(&output, "output", "text", "output: text or json")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	if output != "text" && output != "json" {
		return usageErr(e, "--output must be text or json")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, err := sf.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	in, err := sf.open(ctx, log, "")
	if err != nil {
		return failErr(e, err)
	}
	defer in.Close()
	var t *tenant.Tenant
	if tenantName != "" {
		if t, err = tenantNamed(ctx, in, tenantName); err != nil {
			return failErr(e, err)
		}
	}
	start := time.Now()
	reps, err := in.RunRetention(ctx, t, func(t *tenant.Tenant, step string, s auditlog.ArchiveSegment) {
		fmt.Fprintf(e.stderr, "attest: %s: %s entries [%d, %d) (%s)\n", t.Name, step, s.First, s.End, s.Object)
	})
	publish(context.WithoutCancel(ctx), in)
	if output == "json" {
		out := []map[string]any{}
		for _, r := range reps {
			out = append(out, map[string]any{"tenant": r.Tenant, "archived_entries": r.ArchivedEntries,
				"archived_segments": len(r.Archived), "expired_entries": r.ExpiredEntries, "expired_segments": len(r.Expired),
				"objects_deleted": r.ObjectsDeleted, "held_entries": r.HeldEntries, "legal_hold": r.Policy.LegalHold})
		}
		json.NewEncoder(e.stdout).Encode(map[string]any{"tenants": out, "error": errText(err)})
	} else {
		for _, r := range reps {
			fmt.Fprintf(e.stdout, "%s: archived %d entries in %d segment(s), expired %d entries in %d segment(s)",
				r.Tenant, r.ArchivedEntries, len(r.Archived), r.ExpiredEntries, len(r.Expired))
			if r.HeldEntries > 0 {
				fmt.Fprintf(e.stdout, "; a legal hold keeps %d entries past their retention", r.HeldEntries)
			}
			fmt.Fprintln(e.stdout)
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(e, "retention run interrupted after %s; what was committed stays, and the next run goes on from there",
				time.Since(start).Round(time.Millisecond))
		}
		return fail(e, "retention run: %v", err)
	}
	return exitOK
}

func errText(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

func retentionPolicy(e *env, sub string, args []string) int {
	var sf storeFlags
	var tenantName, reason, output string
	var days, hot int
	fs := newFlags(e, "retention "+sub)
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "", "the tenant (required)")
	fs.StringVar(&output, "output", "text", "output: text or json")
	switch sub {
	case "set":
		fs.IntVar(&days, "retention-days", 0, fmt.Sprintf("days entries are kept (%d to %d; default %d)",
			auditlog.MinRetentionDays, auditlog.MaxRetentionDays, auditlog.DefaultRetentionDays))
		fs.IntVar(&hot, "hot-days", 0, fmt.Sprintf("days the newest entries stay in the database before they are "+
			"archived (default %d)", auditlog.DefaultHotDays))
	case "hold", "release":
		fs.StringVar(&reason, "reason", "", "why, such as the matter it is for; recorded in the audit trail (required)")
	}
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	if tenantName == "" {
		return usageErr(e, "--tenant is required")
	}
	if output != "text" && output != "json" {
		return usageErr(e, "--output must be text or json")
	}
	if sub == "hold" || sub == "release" {
		if err := instance.CheckReason(reason); err != nil {
			return usageErr(e, "--%v", err)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if sub == "set" {
		if !set["retention-days"] && !set["hot-days"] {
			return usageErr(e, "give --retention-days, --hot-days or both")
		}
		if set["retention-days"] && days <= 0 || set["hot-days"] && hot <= 0 {
			return usageErr(e, "--retention-days and --hot-days must be positive numbers of days")
		}
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	var err error
	var pol auditlog.Policy
	switch sub {
	case "show":
		pol, err = in.Log.Policy(ctx, in.DB.Read, t.ID)
	case "set":
		var dp, hp *int
		if set["retention-days"] {
			dp = &days
		}
		if set["hot-days"] {
			hp = &hot
		}
		pol, err = in.SetRetention(ctx, t, dp, hp, hostActor(), hostDecorate("retention set"))
	case "hold", "release":
		pol, err = in.SetLegalHold(ctx, t, sub == "hold", reason, hostActor(), hostDecorate("retention "+sub))
	}
	var pe *auditlog.PolicyError
	if errors.Is(err, instance.ErrHoldSet) || errors.Is(err, instance.ErrNoHold) {
		return fail(e, "retention %s: %v", sub, err)
	}
	if errors.As(err, &pe) {
		return usageErr(e, "--%s: %s", flagOf(pe.Field), pe.Reason)
	}
	if err != nil {
		return fail(e, "retention %s: %v", sub, err)
	}
	if sub != "show" {
		publish(ctx, in)
	}
	head, err := in.Log.Head(ctx, in.DB.Read, t.ID)
	if err != nil {
		return fail(e, "retention %s: %v", sub, err)
	}
	if output == "json" {
		json.NewEncoder(e.stdout).Encode(map[string]any{"tenant": t.Name, "retention_days": pol.RetentionDays,
			"hot_days": pol.HotDays, "legal_hold": pol.LegalHold, "hold_reason": pol.HoldReason, "default": pol.Default,
			"entries": head.Size, "archived_below": head.Archived, "expired_below": head.Expired})
		return exitOK
	}
	what := "its own policy"
	if pol.Default {
		what = "the default policy"
	}
	fmt.Fprintf(e.stdout, "tenant %s (%s): entries are kept %d days, the newest %d days in the database\n",
		t.Name, what, pol.RetentionDays, pol.HotDays)
	if pol.LegalHold {
		fmt.Fprintf(e.stdout, "legal hold: set (%s); nothing is deleted while it holds\n", pol.HoldReason)
	} else {
		fmt.Fprintln(e.stdout, "legal hold: none")
	}
	fmt.Fprintf(e.stdout, "entries: %d; archived below %d; payloads deleted below %d\n", head.Size, head.Archived, head.Expired)
	return exitOK
}

// flagOf names the command-line flag of a policy field.
func flagOf(field string) string {
	switch field {
	case "retention_days":
		return "retention-days"
	case "hot_days":
		return "hot-days"
	}
	return field
}
