package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/evidence"
	"github.com/attest/attest/internal/tenant"
)

// cmdAuditExport writes the evidence bundle of a period for an auditor.
func cmdAuditExport(e *env, args []string) int {
	var sf storeFlags
	var tenantName, fromS, toS, out, format string
	fs := newFlags(e, "audit export")
	fs.store(&sf)
	fs.StringVar(&format, "format", "bundle", "bundle (a zip an auditor verifies offline), or the events themselves, "+
		"with their personal values unless erased: ndjson, ocsf (OCSF "+auditlog.OCSFVersion+" events) or csv")
	fs.StringVar(&tenantName, "tenant", tenant.Default, "tenant whose log")
	fs.StringVar(&fromS, "from", "", "start of the period of received times, included (RFC 3339, required)")
	fs.StringVar(&toS, "to", "", "end of the period, excluded (RFC 3339, required)")
	fs.StringVar(&out, "out", "", "the file to write, which must not exist, or - for standard output (required)")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	var from, to time.Time
	for _, tf := range []struct {
		flag, val string
		dst       *time.Time
	}{{"from", fromS, &from}, {"to", toS, &to}} {
		if tf.val == "" {
			return usageErr(e, "--%s is required", tf.flag)
		}
		v, ok := event.ParseTime(tf.val)
		if !ok {
			return usageErr(e, "--%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", tf.flag)
		}
		if event.CheckEarliest(tf.flag, v) != nil {
			return usageErr(e, "--%s is before 1990-01-01; no event is that old", tf.flag)
		}
		*tf.dst = v
	}
	if !from.Before(to) {
		return usageErr(e, "--from must be before --to")
	}
	if out == "" {
		return usageErr(e, "--out is required")
	}
	if format != "bundle" && format != auditlog.FormatNDJSON && format != auditlog.FormatCSV && format != auditlog.FormatOCSF {
		return usageErr(e, "--format must be bundle, ndjson, ocsf or csv")
	}
	// Interrupted, the export stops and removes what it wrote.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	progress := func(done, total int64) { fmt.Fprintf(e.stderr, "exported %d of %d entries\n", done, total) }
	// The export is recorded in the tenant's trail before anything of it
	// is handed over: before the file is renamed into place, or before
	// standard output is written.
	h := &hostRecord{cmd: "audit export", action: "audit.trail.export", category: "data_access", start: time.Now(),
		outcome: event.Outcome{Result: "success"}, details: map[string]any{"format": format,
			"from": from.Format(time.RFC3339Nano), "to": to.Format(time.RFC3339Nano)}}
	if out == "-" {
		if err := h.record(ctx, in, t); err != nil {
			return fail(e, "the export could not be recorded in %s's audit log, so it is withheld: %v", t.Name, err)
		}
		publish(ctx, in)
		var err error
		if format == "bundle" {
			_, err = in.Log.ExportBundle(ctx, t, from, to, e.stdout, progress)
		} else {
			_, err = in.Log.ExportRecords(ctx, t, from, to, format, e.stdout, progress)
		}
		if err != nil {
			return fail(e, "export: %v", err)
		}
		return exitOK
	}
	// Written under a temporary name and renamed once whole, so that no
	// half-written file is ever taken for a whole one.
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return usageErr(e, "--out: %v", err)
	}
	f.Close()
	tmp := out + ".partial"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.Remove(out)
		return usageErr(e, "--out: %v (a file of that name beside it is in the way)", err)
	}
	publish(ctx, in)
	var m *evidence.Manifest
	var n int64
	if format == "bundle" {
		m, err = in.Log.ExportBundle(ctx, t, from, to, w, progress)
	} else {
		n, err = in.Log.ExportRecords(ctx, t, from, to, format, w, progress)
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if m != nil {
			n = m.End - m.First
		}
		h.details["entries"] = n
		if rerr := h.record(ctx, in, t); rerr != nil {
			err = fmt.Errorf("the export could not be recorded in %s's audit log, so it is withheld: %w", t.Name, rerr)
		}
	}
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.Remove(tmp)
		os.Remove(out)
		if errors.Is(err, auditlog.ErrNoCheckpoint) {
			return fail(e, "tenant %s has no signed checkpoint yet: run attest serve, or any one-shot command, to sign one", t.Name)
		}
		return fail(e, "export: %v", err)
	}
	syncDirOf(out)
	if m != nil && m.End == m.TreeSize {
		fmt.Fprintf(e.stderr, "attest: the period reaches past the newest signed entry, so this bundle cannot prove it "+
			"complete; export it again once the log holds an entry received after %s\n", m.To.Format(time.RFC3339Nano))
	}
	if m == nil {
		fmt.Fprintf(e.stdout, "wrote %s: %d events of tenant %s received from %s to %s, as %s\n", out, n, t.Name,
			from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), format)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d entries of tenant %s received from %s to %s (%s), proved against "+
		"the checkpoint of size %d\n", out, m.End-m.First, t.Name, m.From.Format(time.RFC3339Nano), m.To.Format(time.RFC3339Nano),
		seqRange(m.First, m.End), m.TreeSize)
	return exitOK
}

// seqRange says which sequence numbers [first, end) are.
func seqRange(first, end int64) string {
	if first == end {
		return "no entry was received in the period"
	}
	return fmt.Sprintf("sequences %d to %d", first, end-1)
}

func syncDirOf(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
}

// verifyBundle checks an evidence bundle offline, with no store at all.
func verifyBundle(e *env, path, publicKey string, want *evidence.Expected) int {
	f, err := os.Open(path)
	if err != nil {
		return usageErr(e, "--bundle: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(e, "--bundle: %v", err)
	}
	rep, err := evidence.Verify(f, fi.Size(), publicKey, want)
	var p *evidence.Problem
	if errors.As(err, &p) {
		fmt.Fprintf(e.stdout, "%s: FAILED: %s\n", path, p.What)
		return exitProblem
	}
	if err != nil {
		return fail(e, "%s: %v", path, err)
	}
	m := rep.Manifest
	fmt.Fprintf(e.stdout, "%s: intact: %d entries of %s received from %s to %s (%s), each proved in the "+
		"signed tree of size %d\n", path, rep.Events, m.Origin, m.From.Format(time.RFC3339Nano), m.To.Format(time.RFC3339Nano),
		seqRange(m.First, m.End), m.TreeSize)
	if rep.Extended {
		fmt.Fprintf(e.stdout, "%s: the checkpoint extends the one signed at size %d, at or before the period's first entry\n",
			path, m.StartSize)
	}
	if want == nil {
		fmt.Fprintf(e.stdout, "%s: check that the period above is the one asked for, or give it with --from and --to\n", path)
	}
	if !rep.Closed {
		// Nothing in the bundle shows that the log held no later entry
		// of the period: one made against an older checkpoint looks the
		// same. It proves what it holds, not that it holds all.
		fmt.Fprintf(e.stdout, "%s: NOT PROVED COMPLETE: the signed tree it is proved against holds no entry received after "+
			"the period, so entries of the period beyond it cannot be ruled out; export it again once the log holds a later entry\n", path)
		return exitProblem
	}
	if m.First == 0 {
		fmt.Fprintf(e.stdout, "%s: complete: the range starts at the log's first entry, and the entry after it was received "+
			"after the period\n", path)
	} else {
		fmt.Fprintf(e.stdout, "%s: complete: the entries just before and after the range were received outside the period\n", path)
	}
	return exitOK
}
