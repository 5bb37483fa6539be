package cli

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
	"golang.org/x/mod/sumdb/note"
)

func cmdVerify(e *env, args []string) int {
	var sf storeFlags
	var tenantName, cpFile, pubKey, bundle string
	var all, deep, quiet bool
	fs := newFlags(e, "verify")
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "", "verify one tenant's log")
	fs.BoolVar(&all, "all", false, "verify every tenant's log (the default)")
	fs.StringVar(&cpFile, "checkpoint", "", "a checkpoint file obtained earlier: prove the log still extends it")
	fs.StringVar(&pubKey, "public-key", "", "trusted verifier key, or a file holding it; default: the log's own key history")
	fs.BoolVar(&deep, "deep", false, "also open every personal value against its commitment and rebuild the search index")
	fs.BoolVar(&quiet, "quiet", false, "print only problems")
	var bundleFrom, bundleTo string
	fs.StringVar(&bundle, "bundle", "", "an evidence bundle (attest audit export) to check offline against --public-key, "+
		"with no store")
	fs.StringVar(&bundleFrom, "from", "", "with --bundle: the start of the period asked for (RFC 3339), which the bundle must cover")
	fs.StringVar(&bundleTo, "to", "", "with --bundle: the end of the period asked for")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	if all && tenantName != "" {
		return usageErr(e, "give --tenant or --all, not both")
	}
	var cp []byte
	if cpFile != "" {
		b, err := os.ReadFile(cpFile)
		if err != nil {
			return usageErr(e, "--checkpoint: %v", err)
		}
		cp = b
	}
	if bundle != "" && (pubKey == "" || cpFile != "" || tenantName != "" || all || deep) {
		return usageErr(e, "--bundle takes --public-key, the verifier key of the bundle's log, --from and --to, and no other flag")
	}
	if bundle == "" && (bundleFrom != "" || bundleTo != "") {
		return usageErr(e, "--from and --to go with --bundle")
	}
	var vkeys []string
	if pubKey != "" {
		k := pubKey
		if b, err := os.ReadFile(pubKey); err == nil {
			k = string(bytes.TrimSpace(b))
		}
		if _, err := note.NewVerifier(k); err != nil {
			return usageErr(e, "--public-key: %q is neither a verifier key, as attest audit public-key prints it, "+
				"nor a file holding one", pubKey)
		}
		if bundle != "" {
			var want *evidence.Expected
			if bundleFrom != "" || bundleTo != "" {
				from, okf := event.ParseTime(bundleFrom)
				to, okt := event.ParseTime(bundleTo)
				if !okf || !okt {
					return usageErr(e, "--from and --to must both be RFC 3339 times, the period the bundle was asked for")
				}
				want = &evidence.Expected{From: from, To: to}
			}
			return verifyBundle(e, bundle, k, want)
		}
		vkeys = []string{k}
	}
	log, err := sf.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	ctx := context.Background()
	in, err := sf.open(ctx, log, "")
	if err != nil {
		return failErr(e, err)
	}
	defer in.Close()
	// When verification found a log damaged, signing is refused for the
	// same reason, which verify has told already.
	var failed []string
	defer func() {
		_, err := in.Log.PublishCheckpoints(ctx)
		switch {
		case errors.Is(err, auditlog.ErrRefusedToSign) && len(failed) > 0:
		case errors.Is(err, auditlog.ErrRefusedToSign):
			in.Logger.Error("the log does not match what was signed before; run attest verify --all", "error", err)
		case err != nil:
			in.Logger.Warn("could not sign a checkpoint; a running server will", "error", err)
		}
	}()
	fromCheckpoint := false
	if cp != nil && tenantName == "" {
		// The checkpoint's origin names its tenant.
		origin, _, _ := strings.Cut(string(cp), "\n")
		name, ok := strings.CutPrefix(origin, in.Name+"/")
		if !ok {
			return fail(e, "--checkpoint: its origin %q is not a log of this instance (%s/...)", origin, in.Name)
		}
		tenantName, fromCheckpoint = name, true
	}
	var ts []*tenant.Tenant
	if tenantName != "" {
		t, err := tenantNamed(ctx, in, tenantName)
		if err != nil && errors.As(err, new(usageError)) && in.Log.HasWitness(tenantName) {
			fmt.Fprintf(e.stdout, "%s: FAILED: this data directory signed a log of this tenant, which the "+
				"database no longer holds: it has been deleted\n", tenantName)
			return exitProblem
		}
		if err != nil && fromCheckpoint && errors.As(err, new(usageError)) {
			return fail(e, "--checkpoint: its origin names tenant %q, which this instance does not have", tenantName)
		}
		if err != nil {
			return failErr(e, err)
		}
		ts = []*tenant.Tenant{t}
	}
	// The witnesses are listed before the tenants, so that a tenant created
	// and checkpointed meanwhile is not taken for a deleted one.
	var witnessed []string
	if tenantName == "" {
		if witnessed, err = in.Log.Witnessed(); err != nil {
			return failErr(e, err)
		}
		if ts, err = in.Tenants.List(ctx); err != nil {
			return failErr(e, err)
		}
	}
	start := time.Now()
	code := exitOK
	var vs []*instance.Verification
	for _, t := range ts {
		c, v := verifyTenant(ctx, e, in, t, auditlog.VerifyOptions{VerifierKeys: vkeys, Checkpoint: cp, Deep: deep}, quiet)
		if c != exitOK {
			code = c
			failed = append(failed, t.Name)
		}
		vs = append(vs, v)
	}
	if tenantName == "" {
		// A log this data directory signed must still be in the database.
		for _, name := range witnessed {
			if !slices.ContainsFunc(ts, func(t *tenant.Tenant) bool { return t.Name == name }) {
				fmt.Fprintf(e.stdout, "%s: FAILED: this data directory signed a log of this tenant, which the "+
					"database no longer holds: it has been deleted\n", name)
				code = exitProblem
				failed = append(failed, name)
			}
		}
	}
	if err := recordVerify(ctx, in, start, tenantName, vs, failed, deep, cp != nil); err != nil {
		return fail(e, "the verification could not be recorded in the operator's audit log: %v", err)
	}
	return code
}

// recordVerify logs a verification in the operator's trail, which holds
// what concerns the instance, so that a damaged log is not appended to: the
// tenant verified, or all of them, and which failed. Each tenant's outcome
// is stored in log_verifications in the same transaction, as the evidence
// that control LOG-02 reads.
func recordVerify(ctx context.Context, in *instance.Instance, start time.Time, tenantName string,
	vs []*instance.Verification, failed []string, deep, checkpoint bool) error {
	n := len(vs)
	op, err := in.Operator(ctx)
	if err != nil {
		return err
	}
	h := &hostRecord{cmd: "verify", action: "audit.log.verify", category: "data_access", start: start,
		target: event.Target{Type: "instance", ID: in.Name}, outcome: event.Outcome{Result: "success"},
		details: map[string]any{"tenants": n, "failed": len(failed), "deep": deep, "checkpoint": checkpoint}}
	if tenantName != "" {
		h.target = event.Target{Type: "tenant", ID: tenantName, Name: tenantName}
	}
	if len(failed) > 0 {
		h.outcome = event.Outcome{Result: "failure", Reason: "verification failed: " + strings.Join(failed, ", ")}
	}
	h.tx = func(ctx context.Context, tx *sql.Tx) error { return in.InsertVerifications(ctx, tx, vs) }
	return h.record(ctx, in, op)
}

// verifyTenant verifies one tenant's log and prints what it found, and
// returns the exit code with the record of the verification.
func verifyTenant(ctx context.Context, e *env, in *instance.Instance, t *tenant.Tenant, opts auditlog.VerifyOptions,
	quiet bool) (int, *instance.Verification) {
	started := in.Now()
	last := time.Now()
	opts.Progress = func(done, total int64) {
		if time.Since(last) > 3*time.Second {
			last = time.Now()
			fmt.Fprintf(e.stderr, "%s: verified %d of %d entries\n", t.Name, done, total)
		}
	}
	rep, err := in.Log.Verify(ctx, t, opts)
	v := instance.NewVerification(t, started, in.Now(), rep, err)
	if err != nil {
		return fail(e, "%s: verification could not finish: %v", t.Name, err), v
	}
	if rep.Problem != nil {
		fmt.Fprintf(e.stdout, "%s: FAILED: %v\n", t.Name, rep.Problem)
		return exitProblem, v
	}
	if !quiet {
		rate := float64(rep.Size) / max(rep.Elapsed.Seconds(), 1e-9)
		fmt.Fprintf(e.stdout, "%s: intact: %d entries, root %v, %d checkpoints verified, %d tiles, %s (%.0f entries/s)\n",
			t.Name, rep.Size, rep.Root, rep.Checkpoints, rep.Tiles, rep.Elapsed.Round(time.Millisecond), rate)
		if rep.Unsigned > 0 {
			fmt.Fprintf(e.stdout, "%s: the newest %d entries are not in a signed checkpoint yet\n", t.Name, rep.Unsigned)
		}
		if rep.Archived > 0 || rep.Expired > 0 {
			fmt.Fprintf(e.stdout, "%s: %d entries read from %d archive segments, each object matching its signed "+
				"manifest; %d entries past their retention checked by their leaf hashes alone\n",
				t.Name, rep.Archived, rep.Segments, rep.Expired)
		}
		if opts.Deep {
			fmt.Fprintf(e.stdout, "%s: %d entries' personal values match their commitments", t.Name, rep.Personal)
			if rep.Erased > 0 {
				fmt.Fprintf(e.stdout, ", %d entries' are erased", rep.Erased)
			}
			fmt.Fprintf(e.stdout, "; the stored index segments match the %d entries they cover (the last %d are "+
				"indexed in memory, rebuilt from the log at start", rep.Indexed, rep.Size-rep.Indexed-rep.IndexSkipped-rep.Expired)
			if rep.IndexSkipped > 0 {
				fmt.Fprintf(e.stdout, "; %d are in segments over expired entries, which cannot be rebuilt", rep.IndexSkipped)
			}
			fmt.Fprintln(e.stdout, ")")
		}
		if rep.ExtendsCheckpoint {
			fmt.Fprintf(e.stdout, "%s: the log extends the given checkpoint\n", t.Name)
		}
		if rep.Witness > 0 {
			fmt.Fprintf(e.stdout, "%s: the log extends the checkpoint at size %d that this data directory signed last\n",
				t.Name, rep.Witness)
		}
	}
	return exitOK, v
}
