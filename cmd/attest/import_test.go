package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestImportUnreadableFile imports a gzip file cut short between two good
// files: what was read of it is committed and counted, the files after it
// are still imported, and the exit code is 1.
func TestImportUnreadableFile(t *testing.T) {
	t.Parallel()
	dir := initDir(t)
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "internal", "importer", "testdata", "kubernetes.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(string(tmpl), "\n", 2)[0]
	var all strings.Builder
	const n = 5000
	for i := range n {
		all.WriteString(strings.Replace(first, `"auditID":"`, fmt.Sprintf(`"auditID":"cut-%d-`, i), 1) + "\n")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(all.String()))
	zw.Close()
	whole := writeFile(t, "whole.log.gz", gz.String())
	cut := writeFile(t, "cut.log.gz", gz.String()[:gz.Len()*3/4])
	good := writeFile(t, "good.log", strings.Replace(first, `"auditID":"`, `"auditID":"good-`, 1)+"\n")

	r := attestCmd(t, dir, "import", "--format", "kubernetes", "--tenant", "default", cut, good).want(t, 1)
	m := regexp.MustCompile(`cut\.log\.gz: (\d+) records read before an error: (\d+) imported`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("stdout %q does not count what was read of the cut file", r.stdout)
	}
	if !strings.Contains(r.stdout, "good.log: 1 records: 1 imported") || !strings.Contains(r.stderr, "cut.log.gz: ") {
		t.Errorf("stdout %q, stderr %q: the file after the cut one was not imported, or the error not named", r.stdout, r.stderr)
	}
	read, _ := strconv.Atoi(m[1])
	// A file whose gzip data fails its checksum stores nothing.
	damaged := []byte(gz.String())
	damaged[len(damaged)-8] ^= 0xff // the CRC-32 in the trailer
	bad := writeFile(t, "damaged.log.gz", string(damaged))
	r = attestCmd(t, dir, "import", "--format", "kubernetes", "--tenant", "default", bad).want(t, 1)
	if !strings.Contains(r.stderr, "damaged gzip data") || !strings.Contains(r.stderr, "nothing of this file was imported") ||
		strings.Contains(r.stdout, "imported") {
		t.Errorf("damaged file: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	// Everything read of the cut file was stored: the whole file finds it
	// present and stores the rest.
	r = attestCmd(t, dir, "import", "--format", "kubernetes", "--tenant", "default", whole).want(t, 0)
	want := fmt.Sprintf("%d records: %d imported, %d already present, 0 rejected", n, n-read, read)
	if !strings.Contains(r.stdout, want) {
		t.Errorf("whole file: stdout %q, want %q", r.stdout, want)
	}
}
