package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

func cmdTenant(e *env, args []string) int {
	const use = "usage: attest tenant create NAME | attest tenant list"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 || (args[0] != "create" && args[0] != "list") {
		return usageErr(e, use)
	}
	sub := args[0]
	var sf storeFlags
	fs := newFlags(e, "tenant "+sub)
	fs.store(&sf)
	if sub == "create" {
		fs.takes("NAME", 1)
	}
	if err := fs.parse(args[1:]); err != nil {
		return parseExit(err)
	}
	ctx := context.Background()
	log, err := sf.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	if sub == "create" && fs.NArg() != 1 {
		return usageErr(e, "usage: attest tenant create NAME")
	}
	if sub == "create" {
		if err := tenant.ValidateName(fs.Arg(0)); err != nil {
			return usageErr(e, "%v", err)
		}
	}
	in, err := sf.open(ctx, log, "")
	if err != nil {
		return failErr(e, err)
	}
	defer in.Close()
	if sub == "create" {
		name := fs.Arg(0)
		if err := in.CreateTenant(ctx, name, false, hostActor(), hostDecorate("tenant create")); err != nil {
			if errors.Is(err, tenant.ErrExists) {
				return fail(e, "tenant %q already exists", name)
			}
			return fail(e, "create tenant: %v", err)
		}
		publish(ctx, in)
		fmt.Fprintf(e.stdout, "created tenant %s\n", name)
		return exitOK
	}
	ts, err := in.Tenants.List(ctx)
	if err != nil {
		return failErr(e, err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tSYSTEM")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%v\n", t.Name, t.CreatedAt.Format(time.RFC3339), t.System)
	}
	tw.Flush()
	return exitOK
}

func cmdAPIKey(e *env, args []string) int {
	const use = "usage: attest apikey create --tenant T --role R [--name N] [--expires D] | list [--tenant T] | revoke ID"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "revoke") {
		return usageErr(e, use)
	}
	sub := args[0]
	var sf storeFlags
	var tenantName, role, name, output string
	var expires time.Duration
	fs := newFlags(e, "apikey "+sub)
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "", "tenant the key acts in (operator keys: the operator tenant)")
	if sub == "create" {
		fs.StringVar(&role, "role", "", "operator, admin, ingest or reader")
		fs.StringVar(&name, "name", "", "a name to recognise the key by")
		fs.DurationVar(&expires, "expires", 0, "lifetime, such as 720h; leave it out for a key that does not expire")
	}
	if sub == "revoke" {
		fs.takes("ID", 1)
	}
	fs.StringVar(&output, "output", "text", "output: text or json")
	if err := fs.parse(args[1:]); err != nil {
		return parseExit(err)
	}
	log, err := sf.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	var r access.Role
	switch sub {
	case "create":
		if r, err = access.ParseRole(role); err != nil {
			return usageErr(e, "--role: %v", err)
		}
		if err := access.ValidateKeyName(name); err != nil {
			return usageErr(e, "--name: %v", err)
		}
		if tenantName == "" {
			if r != access.RoleOperator {
				return usageErr(e, "--tenant is required for a %s key", r)
			}
			tenantName = tenant.Operator
		}
		if err := r.CheckTenant(tenantName == tenant.Operator); err != nil {
			if r == access.RoleOperator {
				return usageErr(e, "%v; leave out --tenant", err)
			}
			return usageErr(e, "--tenant %s: %v", tenantName, err)
		}
	case "revoke":
		if fs.NArg() != 1 {
			return usageErr(e, "usage: attest apikey revoke ID")
		}
	}
	if output != "text" && output != "json" {
		return usageErr(e, "--output must be text or json")
	}
	ctx := context.Background()
	in, err := sf.open(ctx, log, "")
	if err != nil {
		return failErr(e, err)
	}
	defer in.Close()
	defer publish(ctx, in)
	switch sub {
	case "create":
		t, err := tenantNamed(ctx, in, tenantName)
		if err != nil {
			return failErr(e, err)
		}
		var exp time.Time
		if expires > 0 {
			exp = time.Now().Add(expires).UTC().Truncate(time.Microsecond)
		}
		tok, k, err := in.CreateKey(ctx, t, r, name, exp, hostActor(), hostDecorate("apikey create"))
		if err != nil {
			return fail(e, "create key: %v", err)
		}
		if output == "json" {
			json.NewEncoder(e.stdout).Encode(map[string]any{"id": k.ID, "tenant": t.Name, "role": k.Role, "name": k.Name,
				"key": tok.Reveal(), "expires_at": formatTime(k.ExpiresAt)})
			return exitOK
		}
		fmt.Fprintf(e.stderr, "created %s key %s in tenant %s; it is shown once:\n", k.Role, k.ID, t.Name)
		fmt.Fprintln(e.stdout, tok.Reveal())
		return exitOK
	case "list":
		var scope int64
		if tenantName != "" {
			t, err := tenantNamed(ctx, in, tenantName)
			if err != nil {
				return failErr(e, err)
			}
			scope = t.ID
		}
		ks, err := in.Keys.List(ctx, scope)
		if err != nil {
			return failErr(e, err)
		}
		return printKeys(e, ctx, in.Tenants, ks, output)
	default:
		var scope *tenant.Tenant
		if scope, err = in.Operator(ctx); err != nil {
			return failErr(e, err)
		}
		if tenantName != "" {
			if scope, err = tenantNamed(ctx, in, tenantName); err != nil {
				return failErr(e, err)
			}
		}
		k, err := in.RevokeKey(ctx, scope, fs.Arg(0), hostActor(), hostDecorate("apikey revoke"))
		if errors.Is(err, store.ErrNotFound) {
			return fail(e, "no API key %q", fs.Arg(0))
		}
		if err != nil {
			return fail(e, "revoke: %v", err)
		}
		fmt.Fprintf(e.stdout, "revoked %s; it fails on its next request\n", k.ID)
		return exitOK
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

func printKeys(e *env, ctx context.Context, reg *tenant.Registry, ks []*access.Key, output string) int {
	name := func(id int64) string {
		if t, err := reg.ByID(ctx, id); err == nil {
			return t.Name
		}
		return fmt.Sprint(id)
	}
	if output == "json" {
		var out []map[string]any
		for _, k := range ks {
			out = append(out, map[string]any{"id": k.ID, "tenant": name(k.TenantID), "role": k.Role, "name": k.Name,
				"created_at": formatTime(k.CreatedAt), "expires_at": formatTime(k.ExpiresAt), "revoked_at": formatTime(k.RevokedAt)})
		}
		json.NewEncoder(e.stdout).Encode(out)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tROLE\tNAME\tCREATED\tEXPIRES\tREVOKED")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, name(k.TenantID), k.Role, k.Name, formatTime(k.CreatedAt),
			dash(formatTime(k.ExpiresAt)), dash(formatTime(k.RevokedAt)))
	}
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
