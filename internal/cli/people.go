package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
)

func cmdUser(e *env, args []string) int {
	const use = "usage: attest user list --tenant T | disable|enable|delete --tenant T --email E [--reason R] | " +
		"enrol-link --tenant T (--email E | --owner) [--expires D] | disable-inactive"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	subs := []string{"list", "disable", "enable", "delete", "enrol-link", "disable-inactive"}
	if len(args) == 0 || !slices.Contains(subs, args[0]) {
		return usageErr(e, use)
	}
	sub := args[0]
	var sf storeFlags
	var tenantName, email, reason string
	var owner bool
	var expires time.Duration
	fs := newFlags(e, "user "+sub)
	fs.store(&sf)
	if sub != "disable-inactive" {
		fs.StringVar(&tenantName, "tenant", "", "the tenant of the account")
	}
	switch sub {
	case "disable", "enable", "delete":
		fs.StringVar(&email, "email", "", "the account's email")
		fs.StringVar(&reason, "reason", "", "why, for the audit trail")
	case "enrol-link":
		fs.StringVar(&email, "email", "", "the account to enrol again (lost factor or password)")
		fs.BoolVar(&owner, "owner", false, "a link that creates a new owner account instead")
		fs.DurationVar(&expires, "expires", identity.DefaultEnrolmentTTL, "how long the link works, at most 168h")
	}
	if err := fs.parse(args[1:]); err != nil {
		return parseExit(err)
	}
	switch {
	case sub != "disable-inactive" && tenantName == "":
		return usageErr(e, "--tenant is required")
	case (sub == "disable" || sub == "enable" || sub == "delete") && email == "":
		return usageErr(e, "--email is required")
	case sub == "enrol-link" && (email == "") == !owner:
		return usageErr(e, "give one of --email or --owner")
	case sub == "enrol-link" && (expires <= 0 || expires > identity.MaxEnrolmentTTL):
		return usageErr(e, "--expires must be between 1s and 168h")
	case len(reason) > 500:
		return usageErr(e, "--reason must be at most 500 bytes")
	}
	ctx := context.Background()
	if sub == "disable-inactive" {
		log, err := sf.setup(e.stderr)
		if err != nil {
			return usageErr(e, "%v", err)
		}
		in, err := sf.open(ctx, log, "")
		if err != nil {
			return failErr(e, err)
		}
		defer in.Close()
		n, err := in.DisableInactive(ctx)
		if err != nil {
			return fail(e, "disable inactive accounts: %v", err)
		}
		fmt.Fprintf(e.stdout, "disabled %d inactive accounts\n", n)
		return exitOK
	}
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	defer publish(ctx, in)
	switch sub {
	case "list":
		us, err := in.Identity.Users.List(ctx, in.DB.Read, t.ID)
		if err != nil {
			return failErr(e, err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tSTATUS\tLAST LOGIN")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Display, u.Name, u.Status, formatTime(u.LastLoginAt))
		}
		tw.Flush()
		return exitOK
	case "enrol-link":
		role := ""
		if owner {
			role = access.RoleOwner
		}
		tok, link, err := in.IssueEnrolment(ctx, t, email, role, expires, hostActor(), hostDecorate("user enrol-link"))
		if errors.Is(err, instance.ErrNoUser) {
			return fail(e, "tenant %s has no account %s", t.Name, email)
		}
		if err != nil {
			return fail(e, "issue enrolment link: %v", err)
		}
		fmt.Fprintf(e.stderr, "enrolment link for tenant %s, expiring %s; it is shown once. Open it in the web console "+
			"as https://<serve's address>/#enrol/<link>, or post it to /api/v1/auth/enrol:\n", t.Name,
			link.ExpiresAt.Format(time.RFC3339))
		fmt.Fprintln(e.stdout, tok)
		return exitOK
	}
	st := map[string]identity.Status{"disable": identity.StatusDisabled, "enable": identity.StatusActive,
		"delete": identity.StatusDeleted}[sub]
	if reason == "" {
		reason = "attest user " + sub + " on the host"
	}
	u, err := in.SetUserStatus(ctx, t, email, st, reason, hostActor(), hostDecorate("user "+sub))
	if errors.Is(err, instance.ErrNoUser) || errors.Is(err, identity.ErrBadEmail) {
		return fail(e, "tenant %s has no account %s", t.Name, email)
	}
	if err != nil {
		return fail(e, "%s: %v", sub, err)
	}
	fmt.Fprintf(e.stdout, "%s %s is %s", u.ID, email, st)
	if st != identity.StatusActive {
		fmt.Fprint(e.stdout, "; its sessions and API keys have ended")
	}
	fmt.Fprintln(e.stdout)
	return exitOK
}

func cmdBreakGlass(e *env, args []string) int {
	const use = "usage: attest breakglass init | use --reason R [--passphrase-file F] | rotate | status"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 || !slices.Contains([]string{"init", "use", "rotate", "status"}, args[0]) {
		return usageErr(e, use)
	}
	sub := args[0]
	var sf storeFlags
	var reason, passFile string
	fs := newFlags(e, "breakglass "+sub)
	fs.store(&sf)
	if sub == "use" {
		fs.StringVar(&reason, "reason", "", "why the emergency access is needed, for the security event")
		fs.StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file instead of standard input")
	}
	if err := fs.parse(args[1:]); err != nil {
		return parseExit(err)
	}
	if sub == "use" && strings.TrimSpace(reason) == "" {
		return usageErr(e, "--reason is required: say why emergency access is needed")
	}
	ctx := context.Background()
	log, err := sf.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	in, err := sf.open(ctx, log, "")
	if err != nil {
		return failErr(e, err)
	}
	defer in.Close()
	defer publish(ctx, in)
	switch sub {
	case "status":
		st, err := in.BreakGlassStatus(ctx)
		if err != nil {
			return failErr(e, err)
		}
		fmt.Fprintf(e.stdout, "created %s; last used %s; rotation required: %v\n", formatTime(st.CreatedAt),
			orNever(formatTime(st.LastUsedAt)), st.RotationRequired)
		return exitOK
	case "init", "rotate":
		pass, err := in.SetBreakGlass(ctx, sub == "rotate", hostActor(), hostDecorate("breakglass "+sub))
		if err != nil {
			return failErr(e, err)
		}
		fmt.Fprintln(e.stderr, "break-glass passphrase, shown this once; keep it offline, such as sealed in a safe:")
		fmt.Fprintln(e.stdout, pass)
		return exitOK
	}
	if _, err := in.BreakGlassStatus(ctx); err != nil {
		return failErr(e, err)
	}
	pass, err := readPassphrase(e, passFile)
	if err != nil {
		return failErr(e, err)
	}
	tok, key, err := in.UseBreakGlass(ctx, pass, reason, hostActor(), hostDecorate("breakglass use"))
	if err != nil {
		return failErr(e, err)
	}
	fmt.Fprintf(e.stderr, "EMERGENCY ACCESS: operator key %s works until %s. A high-severity security event is recorded,\n"+
		"and the break-glass account must be rotated (attest breakglass rotate) before it works again.\n", key.ID,
		key.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintln(e.stdout, tok.Reveal())
	return exitOK
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}

// readPassphrase reads one line from a file or standard input.
func readPassphrase(e *env, file string) (string, error) {
	var r io.Reader = os.Stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", usagef("--passphrase-file: %v", err)
		}
		defer f.Close()
		r = f
	} else {
		fmt.Fprint(e.stderr, "break-glass passphrase: ")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
