package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/controls"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/report"
	"golang.org/x/mod/sumdb/note"
)

func cmdReport(e *env, args []string) int {
	const use = "usage: attest report soc2 --tenant T --from TIME --to TIME --format json|html|pdf|oscal|zip|dir " +
		"--out FILE|DIR [--seed HEX]\n       attest report verify --dir DIR --key KEY"
	if len(args) > 0 && isHelp(args[0]) {
		return help(e, use)
	}
	if len(args) == 0 {
		return usageErr(e, use)
	}
	switch args[0] {
	case "soc2":
		return reportSOC2(e, args[1:])
	case "verify":
		return reportVerify(e, args[1:])
	}
	return usageErr(e, use)
}

// reportFormats are the formats of attest report soc2; dir writes the
// bundle's files into a new directory.
var reportFormats = []string{"json", "html", "pdf", "oscal", "zip", "dir"}

func reportSOC2(e *env, args []string) int {
	var sf storeFlags
	var tenantName, fromS, toS, format, out, seedS string
	fs := newFlags(e, "report soc2")
	fs.store(&sf)
	fs.StringVar(&tenantName, "tenant", "operator", "the tenant whose report to generate")
	fs.StringVar(&fromS, "from", "", "start of the period, RFC 3339 (required)")
	fs.StringVar(&toS, "to", "", "end of the period, excluded, RFC 3339 (required)")
	fs.StringVar(&format, "format", "dir", "json, html, pdf, oscal, zip, or dir for the bundle's files in a new directory")
	fs.StringVar(&out, "out", "", "the file, or for dir the directory, to write; - for the standard output (required)")
	fs.StringVar(&seedS, "seed", "", "sample seed, 64 hex digits; random when empty")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	from, okf := event.ParseTime(fromS)
	to, okt := event.ParseTime(toS)
	if !okf || !okt {
		return usageErr(e, "--from and --to must be RFC 3339 times, such as 2026-01-01T00:00:00Z")
	}
	if !slices.Contains(reportFormats, format) {
		return usageErr(e, "--format must be one of %s", strings.Join(reportFormats, ", "))
	}
	if out == "" {
		return usageErr(e, "--out is required")
	}
	var seed []byte
	if seedS != "" {
		b, err := hex.DecodeString(seedS)
		if err != nil || len(b) != report.SeedSize {
			return usageErr(e, "--seed must be 64 hex digits (32 bytes)")
		}
		seed = b
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	defer publish(ctx, in)
	from, to, err := report.Period(from, to, in.Now())
	if err != nil {
		return usageErr(e, "--%s: %v", err.(*report.PeriodError).Field, err)
	}
	start := time.Now()
	progress := func(step string) {
		fmt.Fprintf(e.stderr, "attest: report: %s (%.1fs)\n", step, time.Since(start).Seconds())
	}
	// Whatever was appended since serve last signed, if it is not running,
	// is covered before the report is pinned to the newest checkpoint.
	publish(ctx, in)
	progress("scores")
	sc, err := controls.Score(ctx, in, t, from, to)
	if err != nil {
		return fail(e, "report: %v", err)
	}
	b, err := report.Build(ctx, in, t, sc, report.Options{From: from, To: to, Seed: seed, Version: Version,
		Progress: progress})
	if err != nil {
		return fail(e, "%v", err)
	}
	toStdout := out == "-"
	if toStdout && format == "dir" {
		return usageErr(e, "--out -: a dir report is a directory; name one")
	}
	if !toStdout {
		if err := writeReport(b, format, out); err != nil {
			return fail(e, "%v", err)
		}
	}
	sum := report.SHA256(b.ManifestJSON)
	details := map[string]any{"format": format, "from": from.UTC().Format(time.RFC3339Nano),
		"to": to.UTC().Format(time.RFC3339Nano), "manifest_sha256": sum, "report_sha256": b.Manifest.ReportSHA256,
		"tree_size": b.Report.Checkpoint.TreeSize, "seed": b.Report.Seed}
	if err := in.RecordAccess(ctx, t, "compliance.report.generate", hostActor(), details,
		hostDecorate("report soc2")); err != nil {
		if !toStdout {
			os.RemoveAll(out)
		}
		return fail(e, "the report could not be recorded in the audit trail, so it is withheld: %v", err)
	}
	// On the standard output the report leaves only once it is on record.
	summary := e.stdout
	if toStdout {
		data, err := rendering(b, format)
		if err == nil {
			_, err = e.stdout.Write(data)
		}
		if err != nil {
			return fail(e, "%v", err)
		}
		summary, out = e.stderr, "the standard output"
	}
	fmt.Fprintf(summary, "wrote %s: %s report of %s, %d criteria, seed %s, manifest sha256 %s\n", out, format,
		t.Name, len(b.Report.Criteria), b.Report.Seed, sum)
	return exitOK
}

// writeReport writes the bundle in the format asked for at out, refusing
// to overwrite anything.
func writeReport(b *report.Bundle, format, out string) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists; name a new file or directory", out)
	}
	if format == "dir" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		return b.WriteDir(out)
	}
	data, err := rendering(b, format)
	if err != nil {
		return err
	}
	return os.WriteFile(out, data, 0o644)
}

func reportVerify(e *env, args []string) int {
	var dir, key string
	fs := newFlags(e, "report verify")
	fs.StringVar(&dir, "dir", "", "the report bundle's directory (attest report soc2 --format dir, or an unzipped zip)")
	fs.StringVar(&key, "key", "", "the verifier key of the tenant's log, as attest audit public-key prints it, "+
		"or a file holding it")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	if dir == "" || key == "" {
		return usageErr(e, "--dir and --key are required")
	}
	if b, err := os.ReadFile(key); err == nil {
		key = string(bytes.TrimSpace(b))
	}
	if _, err := note.NewVerifier(key); err != nil {
		return usageErr(e, "--key: neither a verifier key, as attest audit public-key prints it, nor a file holding one")
	}
	m, err := report.VerifyDir(dir, key)
	if err != nil {
		return fail(e, "report verify: %v", err)
	}
	fmt.Fprintf(e.stdout, "ok: %s report of %s from %s to %s, %d files, pinned to %s at tree size %d\n", m.Manifest,
		m.Tenant, m.From.Format(time.RFC3339), m.To.Format(time.RFC3339), len(m.Files), m.Checkpoint.Origin,
		m.Checkpoint.TreeSize)
	return exitOK
}

// rendering is the bundle in a one-file format.
func rendering(b *report.Bundle, format string) ([]byte, error) {
	switch format {
	case "json":
		return b.JSON, nil
	case "html":
		return b.HTML, nil
	case "pdf":
		return b.PDF, nil
	case "oscal":
		return b.OSCAL, nil
	case "zip":
		return b.Zip()
	}
	return nil, fmt.Errorf("report: no one-file format %q", format)
}
