package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReportCommands generates a report bundle with attest report soc2 and
// checks it with attest report verify, which fails once a population
// changes.
func TestReportCommands(t *testing.T) {
	dir := t.TempDir()
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != want {
			t.Fatalf("attest %s: exit %d, want %d: %s", strings.Join(args, " "), code, want, errb.String())
		}
		return out.String()
	}
	run(exitOK, "init", "--data-dir", dir, "--log-level", "error")
	now := time.Now().UTC()
	from, to := now.Add(-24*time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	out := filepath.Join(t.TempDir(), "bundle")
	seed := strings.Repeat("0f", 32)
	run(exitOK, "report", "soc2", "--data-dir", dir, "--log-level", "error", "--from", from, "--to", to,
		"--out", out, "--seed", seed)
	run(exitUsage, "report", "soc2", "--data-dir", dir, "--from", from, "--to", to, "--out", out+"2", "--seed", "00")
	// On the standard output, once on record.
	if js := run(exitOK, "report", "soc2", "--data-dir", dir, "--log-level", "error", "--from", from, "--to", to,
		"--format", "json", "--out", "-"); !strings.HasPrefix(js, "{") || !strings.Contains(js, `"criteria"`) {
		t.Errorf("report soc2 --out - printed %.80q, want the report's JSON", js)
	}
	// A report covers at most 366 days, and none of the future.
	run(exitUsage, "report", "soc2", "--data-dir", dir, "--log-level", "error", "--from", "2024-01-01T00:00:00Z",
		"--to", to, "--format", "json", "--out", out+"3")
	run(exitUsage, "report", "soc2", "--data-dir", dir, "--log-level", "error", "--from", "1899-01-01T00:00:00Z",
		"--to", "1899-06-01T00:00:00Z", "--format", "json", "--out", out+"3")
	run(exitUsage, "report", "soc2", "--data-dir", dir, "--log-level", "error", "--from", "2999-01-01T00:00:00Z",
		"--to", "2999-06-01T00:00:00Z", "--format", "json", "--out", out+"3")
	run(exitProblem, "report", "soc2", "--data-dir", dir, "--log-level", "error", "--from", from, "--to", to,
		"--out", out, "--format", "dir")
	key := strings.TrimSpace(run(exitOK, "audit", "public-key", "--tenant", "operator", "--data-dir", dir,
		"--log-level", "error"))
	got := run(exitOK, "report", "verify", "--dir", out, "--key", key)
	if !strings.HasPrefix(got, "ok: ") {
		t.Errorf("report verify said %q", got)
	}
	for _, f := range []string{"report.pdf", "report.oscal.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("the bundle lacks %s: %v", f, err)
		}
	}
	// A file beside those the manifest lists would pass for part of the
	// signed report.
	extra := filepath.Join(out, "populations", "extra.csv")
	os.WriteFile(extra, []byte("sequence\n"), 0o644)
	if got := run(exitProblem, "report", "verify", "--dir", out, "--key", key); got != "" {
		t.Errorf("report verify printed %q for a bundle with an extra file", got)
	}
	os.Remove(extra)
	run(exitOK, "report", "verify", "--dir", out, "--key", key)
	p := filepath.Join(out, "populations", "changes.csv")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, append(b, "1,x,y,z,w,v,u\n"...), 0o644)
	run(exitProblem, "report", "verify", "--dir", out, "--key", key)
	run(exitUsage, "report", "verify", "--dir", out, "--key", "not-a-key")
}
