package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/tenant"
)

func cmdAudit(e *env, args []string) int {
	const use = "usage: attest audit query [filters] | export --from T --to T --out FILE.zip | public-key | checkpoint  [--tenant T]"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 {
		return usageErr(e, use)
	}
	switch args[0] {
	case "query":
		return cmdAuditQuery(e, args[1:])
	case "export":
		return cmdAuditExport(e, args[1:])
	case "public-key", "checkpoint":
		return cmdAuditKey(e, args[0], args[1:])
	}
	return usageErr(e, "unknown audit command %q: use query, export, public-key or checkpoint", args[0])
}

func cmdAuditKey(e *env, sub string, args []string) int {
	var sf storeFlags
	var tenantName string
	fs := newFlags(e, "audit "+sub)
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", tenant.Default, "tenant whose log")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	if sub == "public-key" {
		vk, err := in.Log.VerifierKey(t.Name)
		if err != nil {
			return failErr(e, err)
		}
		fmt.Fprintln(e.stdout, vk)
		return exitOK
	}
	publish(ctx, in)
	cp, err := in.Log.LatestCheckpoint(ctx, in.DB.Read, t.ID)
	if err != nil {
		return failErr(e, err)
	}
	e.stdout.Write(cp.Note)
	return exitOK
}

func cmdAuditQuery(e *env, args []string) int {
	var sf storeFlags
	var tenantName, output string
	var f auditlog.Filter
	var occFrom, occTo, rcvFrom, rcvTo, order string
	fs := newFlags(e, "audit query")
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", tenant.Default, "tenant whose log to search")
	fs.StringVar(&occFrom, "occurred-from", "", "occurred at or after (RFC 3339)")
	fs.StringVar(&occTo, "occurred-to", "", "occurred at or before (RFC 3339)")
	fs.StringVar(&rcvFrom, "received-from", "", "received at or after (RFC 3339)")
	fs.StringVar(&rcvTo, "received-to", "", "received at or before (RFC 3339)")
	fs.StringVar(&f.ActorID, "actor-id", "", "actor id")
	fs.StringVar(&f.Action, "action", "", "action, exactly")
	fs.StringVar(&f.ActionPrefix, "action-prefix", "", "action prefix, such as user.")
	fs.StringVar(&f.Category, "category", "", "category")
	fs.StringVar(&f.TargetType, "target-type", "", "target type")
	fs.StringVar(&f.TargetID, "target-id", "", "target id (with --target-type)")
	fs.StringVar(&f.Outcome, "outcome", "", "success, failure, denied or error")
	fs.StringVar(&f.Source, "source", "", "source name")
	fs.StringVar(&f.ClientIP, "client-ip", "", "client IP address")
	fs.StringVar(&f.Text, "text", "", "text in the action or the target's name")
	fs.IntVar(&f.Limit, "limit", 50, "events per page (1 to 1000)")
	fs.StringVar(&f.Cursor, "cursor", "", "continue from a previous page")
	fs.StringVar(&order, "order", "desc", "desc (newest first) or asc")
	fs.StringVar(&output, "output", "table", "table or json")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	for _, tf := range []struct {
		flag, val string
		dst       *time.Time
	}{{"occurred-from", occFrom, &f.OccurredFrom}, {"occurred-to", occTo, &f.OccurredTo},
		{"received-from", rcvFrom, &f.ReceivedFrom}, {"received-to", rcvTo, &f.ReceivedTo}} {
		if tf.val == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, tf.val)
		if err != nil {
			return usageErr(e, "--%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", tf.flag)
		}
		if event.CheckEarliest(tf.flag, v) != nil {
			return usageErr(e, "--%s is before 1990-01-01; no event is that old", tf.flag)
		}
		*tf.dst = v.UTC()
	}
	switch order {
	case "desc":
	case "asc":
		f.Asc = true
	default:
		return usageErr(e, "--order must be asc or desc")
	}
	if output != "table" && output != "json" {
		return usageErr(e, "--output must be table or json")
	}
	if f.Limit < 1 || f.Limit > 1000 {
		return usageErr(e, "--limit must be from 1 to 1000")
	}
	if err := f.Validate(); err != nil {
		var fe *event.FieldError
		if errors.As(err, &fe) {
			// The reasons name other parameters by their API names, which
			// are the flags' names with underscores.
			reason := fe.Reason
			for _, p := range []string{"occurred_from", "received_from", "target_id", "action"} {
				reason = strings.ReplaceAll(reason, " "+p, " --"+strings.ReplaceAll(p, "_", "-"))
			}
			return usageErr(e, "--%s %s", strings.ReplaceAll(fe.Field, "_", "-"), reason)
		}
		return usageErr(e, "%v", err)
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	defer publish(ctx, in)
	h := &hostRecord{cmd: "audit query", action: "audit.trail.query", category: "data_access", start: time.Now(),
		outcome: event.Outcome{Result: "success"}}
	page, err := in.Log.Query(ctx, t, f)
	if err != nil {
		h.outcome = event.Outcome{Result: "failure", Reason: reason(err)}
	} else {
		h.details = map[string]any{"results": len(page.Items)}
	}
	if rerr := h.record(ctx, in, t); rerr != nil {
		return fail(e, "the query could not be recorded in %s's audit log, so its results are withheld: %v",
			t.Name, rerr)
	}
	if errors.Is(err, auditlog.ErrBadCursor) {
		return usageErr(e, "--cursor: %v; give the cursor a previous page printed, with the same filters", err)
	}
	if err != nil {
		return fail(e, "query: %s", reason(err))
	}
	if output == "json" {
		type item struct {
			Sequence int64           `json:"sequence"`
			LeafHash string          `json:"leaf_hash"`
			Event    json.RawMessage `json:"event"`
			Erased   []string        `json:"erased,omitempty"`
		}
		out := struct {
			Items      []item `json:"items"`
			NextCursor string `json:"next_cursor,omitempty"`
			TreeSize   int64  `json:"tree_size"`
		}{Items: []item{}, NextCursor: page.Next, TreeSize: page.TreeSize}
		for _, r := range page.Items {
			out.Items = append(out.Items, item{Sequence: r.Sequence, LeafHash: base64.StdEncoding.EncodeToString(r.LeafHash[:]),
				Event: event.AppendLeaf(nil, r.Event, nil), Erased: r.Erased})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		enc.Encode(out)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOCCURRED\tACTOR\tACTION\tTARGET\tOUTCOME\tSOURCE")
	for _, r := range page.Items {
		ev := r.Event
		target := strings.Trim(ev.Target.Type+":"+ev.Target.ID, ":")
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Sequence, ev.OccurredAt.Format(time.RFC3339), dash(ev.Actor.ID),
			ev.Action, dash(target), ev.Outcome.Result, ev.Source.Name)
	}
	tw.Flush()
	if page.Next != "" {
		fmt.Fprintf(e.stderr, "more: --cursor %s\n", page.Next)
	}
	return exitOK
}
