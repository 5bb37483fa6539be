package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEvidenceBundle exports a period while serve runs, verifies the
// bundle offline with the public key alone, and checks that each kind of
// tampering is caught.
func TestEvidenceBundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	s.ingest(t, s.key, "default", ndjson(t, events(10, "svc", "before.read")))
	// A checkpoint is signed within a second: the bundle proves its own
	// checkpoint extends it.
	time.Sleep(1200 * time.Millisecond)
	from := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	s.ingest(t, s.key, "default", ndjson(t, events(20, "svc", "period.read")))
	// The request's own audit event follows its answer: it is given time
	// to land within the period.
	time.Sleep(300 * time.Millisecond)
	to := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	s.ingest(t, s.key, "default", ndjson(t, events(5, "svc", "after.read")))
	vkey := strings.TrimSpace(attestCmd(t, dir, "audit public-key", "--tenant", "default").want(t, 0).stdout)
	keyFile := writeFile(t, "key.txt", vkey)

	runUsageCases(t, dir, []usageCase{
		{"no from", "audit export", []string{"--to", to.Format(time.RFC3339Nano), "--out", filepath.Join(t.TempDir(), "x.zip")}, 2, "--from is required"},
		{"reversed", "audit export", []string{"--from", to.Format(time.RFC3339Nano), "--to", from.Format(time.RFC3339Nano),
			"--out", filepath.Join(t.TempDir(), "x.zip")}, 2, "--from must be before --to"},
		{"bad time", "audit export", []string{"--from", "yesterday", "--to", to.Format(time.RFC3339Nano), "--out", "x.zip"}, 2, "RFC 3339"},
		{"no out", "audit export", []string{"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)}, 2, "--out is required"},
		{"bundle without key", "verify", []string{"--bundle", "x.zip"}, 2, "--bundle takes --public-key"},
	})

	out := filepath.Join(t.TempDir(), "evidence.zip")
	// Checkpoints are signed within a second of the last events.
	var r result
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		os.Remove(out)
		r = attestCmd(t, dir, "audit export", "--tenant", "default", "--from", from.Format(time.RFC3339Nano),
			"--to", to.Format(time.RFC3339Nano), "--out", out).want(t, 0)
		if b, _ := os.ReadFile(out); bytes.Contains(b, []byte("after/")) || time.Now().After(deadline) {
			break
		}
	}
	// The period holds the 20 events and the audit event of the request
	// that sent them.
	if !strings.Contains(r.stdout, "21 entries of tenant default") {
		t.Fatalf("export printed %q", r.stdout)
	}
	r = attestCmd(t, t.TempDir(), "verify", "--bundle", out, "--public-key", keyFile, "--from", from.Format(time.RFC3339Nano),
		"--to", to.Format(time.RFC3339Nano)).want(t, 0)
	if !strings.Contains(r.stdout, "intact: 21 entries") || !strings.Contains(r.stdout, "complete: the entries just before and after") ||
		!strings.Contains(r.stdout, "the checkpoint extends the one signed at size 11") {
		t.Fatalf("verify --bundle printed %q", r.stdout)
	}
	if r := attestCmd(t, dir, "audit export", "--tenant", "default", "--from", from.Format(time.RFC3339Nano),
		"--to", to.Format(time.RFC3339Nano), "--out", out); r.code != 2 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("export over an existing file: %d %q", r.code, r.stderr)
	}

	// The events themselves, to standard output, and the export recorded.
	r = attestCmd(t, dir, "audit export", "--tenant", "default", "--format", "ndjson", "--from", from.Format(time.RFC3339Nano),
		"--to", to.Format(time.RFC3339Nano), "--out", "-").want(t, 0)
	if n := strings.Count(r.stdout, "\n"); n != 21 || !strings.Contains(r.stdout, `"action":"period.read"`) {
		t.Errorf("ndjson export: %d lines: %.300s", n, r.stdout)
	}
	if q := query(t, dir, "--tenant", "default", "--action", "audit.trail.export"); len(q.Items) < 2 {
		t.Errorf("the exports are not recorded: %+v", q.Items)
	}

	orig, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(files map[string][]byte, m map[string]any)
		want string
	}{
		{"changed event, manifest hash updated", func(f map[string][]byte, m map[string]any) {
			name := firstFile(f, "events/")
			f[name] = bytes.Replace(f[name], []byte("period.read"), []byte("period.wipe"), 1)
		}, "not in the signed tree"},
		{"a manifest with more after it", func(f map[string][]byte, m map[string]any) {
			m["append_raw"] = `{"from":"2000-01-01T00:00:00Z"}`
		}, "manifest.json"},
		{"a manifest member spelled otherwise", func(f map[string][]byte, m map[string]any) {
			m["FROM"] = m["from"]
		}, "manifest.json"},
		{"key history without the key", func(f map[string][]byte, m map[string]any) {
			f["public-keys.json"] = []byte("[]")
		}, "does not hold the key"},
		{"changed key history, manifest left", func(f map[string][]byte, m map[string]any) {
			f["public-keys.json"] = []byte("[]")
			m["keep_hashes"] = true
		}, "does not match its hash"},
		{"changed entry under another spelling of its name", func(f map[string][]byte, m map[string]any) {
			name := firstFile(f, "events/")
			f["./"+name] = bytes.Replace(f[name], []byte("period.read"), []byte("period.wipe"), 1)
		}, "calls for"},
		{"an entry's name spelled otherwise", func(f map[string][]byte, m map[string]any) {
			name := firstFile(f, "events/")
			f["/"+name] = f[name]
			delete(f, name)
		}, "added"},
		{"a file beside the entries", func(f map[string][]byte, m map[string]any) {
			f["NOTE.txt"] = []byte("trust me")
		}, "calls for"},
		{"period's end moved by its offset", func(f map[string][]byte, m map[string]any) {
			m["to"] = strings.Replace(m["to"].(string), "Z", "+00:01", 1)
		}, "not the period asked for"},
		{"start checkpoint dropped from the manifest", func(f map[string][]byte, m map[string]any) {
			m["start_size"] = 0.0
			f["consistency.json"] = []byte("{}")
		}, "calls for"},
		{"deleted event", func(f map[string][]byte, m map[string]any) {
			delete(f, firstFile(f, "events/"))
		}, "calls for 51"},
		{"added event", func(f map[string][]byte, m map[string]any) {
			f["events/extra.json"] = f[firstFile(f, "events/")]
		}, "calls for 51"},
		{"range shortened to hide the last entry", func(f map[string][]byte, m map[string]any) {
			// The last entry is passed off as the neighbour after the period.
			end := int64(m["end"].(float64))
			delete(f, lastFile(f, "after/"))
			delete(f, lastFile(f, "after/"))
			ev, pr := lastFile(f, "events/"), lastFile(f, "proofs/")
			f[strings.Replace(ev, "events/", "after/", 1)], f[strings.Replace(pr, "proofs/", "after/", 1)] = f[ev], f[pr]
			delete(f, ev)
			delete(f, pr)
			m["end"] = end - 1
		}, "the range is not whole"},
		{"start checkpoint from another size", func(f map[string][]byte, m map[string]any) {
			m["start_size"] = m["start_size"].(float64) - 1
		}, "the start checkpoint has size"},
		{"consistency proof altered", func(f map[string][]byte, m map[string]any) {
			f["consistency.json"] = bytes.Replace(f["consistency.json"], []byte(`"hashes":["`), []byte(`"hashes":["AAAA`), 1)
		}, ""},
		{"range cut where no entry was", func(f map[string][]byte, m map[string]any) {
			delete(f, lastFile(f, "events/"))
			delete(f, lastFile(f, "proofs/"))
			m["end"] = m["end"].(float64) - 1
		}, "added"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := rewriteBundle(t, orig, tc.edit)
			path := writeFile(t, "bad.zip", string(bad))
			r := attestCmd(t, t.TempDir(), "verify", "--bundle", path, "--public-key", vkey, "--from", from.Format(time.RFC3339Nano),
				"--to", to.Format(time.RFC3339Nano)).want(t, 1)
			if !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stdout, tc.want) {
				t.Errorf("verify printed %q, want %q", r.stdout, tc.want)
			}
		})
	}
	t.Run("bytes a streaming unzip would read", func(t *testing.T) {
		// An entry hidden between the last listed one and the directory,
		// and bytes before the first: tools that read from the start would
		// show them, this verifier reads the directory.
		var hidden bytes.Buffer
		zw := zip.NewWriter(&hidden)
		w, _ := zw.Create("events/00000000000000000011.json")
		w.Write([]byte(`{"forged":true}`))
		zw.Close()
		eocd := bytes.LastIndex(orig, []byte("PK\x05\x06"))
		cd := int(binary.LittleEndian.Uint32(orig[eocd+16:]))
		entry := hidden.Bytes()[:int(binary.LittleEndian.Uint32(hidden.Bytes()[bytes.LastIndex(hidden.Bytes(), []byte("PK\x05\x06"))+16:]))]
		spliced := append(append(append([]byte{}, orig[:cd]...), entry...), orig[cd:]...)
		binary.LittleEndian.PutUint32(spliced[len(entry)+eocd+16:], uint32(cd+len(entry)))
		for name, b := range map[string][]byte{"hidden entry": spliced, "stub": append([]byte("MZ stub before the zip"), orig...)} {
			path := writeFile(t, "odd.zip", string(b))
			r := attestCmd(t, t.TempDir(), "verify", "--bundle", path, "--public-key", vkey)
			if r.code != 1 || !strings.Contains(r.stdout, "FAILED") {
				t.Errorf("%s: exit %d: %q", name, r.code, r.stdout)
			}
		}
	})
	t.Run("another tenant's key", func(t *testing.T) {
		// Every tenant's log is signed with the instance's one key.
		opKey := strings.TrimSpace(attestCmd(t, dir, "audit public-key", "--tenant", "operator").want(t, 0).stdout)
		r := attestCmd(t, t.TempDir(), "verify", "--bundle", out, "--public-key", opKey).want(t, 1)
		if !strings.Contains(r.stdout, "the log the key is for") {
			t.Errorf("verify printed %q", r.stdout)
		}
	})
	t.Run("a period reaching past the log", func(t *testing.T) {
		open := filepath.Join(t.TempDir(), "open.zip")
		r := attestCmd(t, dir, "audit export", "--tenant", "default", "--from", from.Format(time.RFC3339Nano),
			"--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano), "--out", open).want(t, 0)
		if !strings.Contains(r.stderr, "cannot prove it complete") {
			t.Errorf("export warned %q", r.stderr)
		}
		r = attestCmd(t, t.TempDir(), "verify", "--bundle", open, "--public-key", vkey).want(t, 1)
		if !strings.Contains(r.stdout, "NOT PROVED COMPLETE") {
			t.Errorf("verify printed %q", r.stdout)
		}
	})
	t.Run("another key", func(t *testing.T) {
		other := strings.Replace(vkey, "default", "other", 1)
		if r := attestCmd(t, t.TempDir(), "verify", "--bundle", out, "--public-key", other); r.code == 0 {
			t.Errorf("a bundle verified against another key: %q", r.stdout)
		}
	})
}

func firstFile(files map[string][]byte, prefix string) string {
	best := ""
	for name := range files {
		if strings.HasPrefix(name, prefix) && (best == "" || name < best) {
			best = name
		}
	}
	return best
}

func lastFile(files map[string][]byte, prefix string) string {
	best := ""
	for name := range files {
		if strings.HasPrefix(name, prefix) && name > best {
			best = name
		}
	}
	return best
}

// rewriteBundle applies edit to a bundle's files and manifest, and writes
// it again with the manifest's hashes made to match, unless the edit sets
// keep_hashes.
func rewriteBundle(t *testing.T, orig []byte, edit func(map[string][]byte, map[string]any)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		files[f.Name] = b.Bytes()
	}
	var m map[string]any
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	delete(files, "manifest.json")
	edit(files, m)
	if m["keep_hashes"] == nil {
		hashes := map[string]any{}
		for name, b := range files {
			if !strings.Contains(name, "/") {
				sum := sha256.Sum256(b)
				hashes[name] = hex.EncodeToString(sum[:])
			}
		}
		m["files"] = hashes
	}
	delete(m, "keep_hashes")
	suffix, _ := m["append_raw"].(string)
	delete(m, "append_raw")
	mb, _ := json.Marshal(m)
	mb = append(mb, suffix...)
	files["manifest.json"] = mb
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range files {
		w, _ := zw.Create(name)
		w.Write(b)
	}
	zw.Close()
	return buf.Bytes()
}

// TestOCSFExport maps the CloudTrail records of the dataset's OCSF samples
// and compares what attest exports with the hand-made OCSF events.
func TestOCSFExport(t *testing.T) {
	t.Parallel()
	base := filepath.Join("..", "..", "..", "shared", "datasets", "ocsf-mapping-samples", "mappings", "markdown", "AWS",
		"v1.5.0", "CloudTrail")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("the OCSF samples are not here (%v): ../shared/datasets is absent", err)
	}
	dir := initDir(t)
	samples := map[string]string{"API Activity": "generic_api_activity", "Authentication": "authentication"}
	for class, name := range samples {
		attestCmd(t, dir, "import", "--format", "cloudtrail", "--tenant", "default",
			filepath.Join(base, class, "samples", name+".raw")).want(t, 0)
	}
	r := attestCmd(t, dir, "audit export", "--tenant", "default", "--format", "ocsf", "--from", "2000-01-01T00:00:00Z",
		"--to", "2100-01-01T00:00:00Z", "--out", "-").want(t, 0)
	got := map[string]map[string]any{} // by api.request.uid
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("an exported line is not JSON: %v: %s", err, line)
		}
		got[fmt.Sprint(path(ev, "api.request.uid"))] = ev
	}
	// The samples are not strict JSON: a comma may come before a closing brace.
	trailing := regexp.MustCompile(`,(\s*[}\]])`)
	for class, name := range samples {
		b, err := os.ReadFile(filepath.Join(base, class, "samples", name+".ocsf"))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(trailing.ReplaceAll(b, []byte("$1")), &want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev := got[fmt.Sprint(path(want, "api.request.uid"))]
		if ev == nil {
			t.Fatalf("%s: no exported event has request uid %v", name, path(want, "api.request.uid"))
		}
		fields := []string{"class_uid", "category_uid", "activity_id", "type_uid", "time", "api.operation",
			"api.service.name", "src_endpoint.ip", "http_request.user_agent", "status"}
		if class == "API Activity" {
			// The sign-in sample names its user from additionalEventData,
			// which the importer does not read.
			fields = append(fields, "actor.user.name", "actor.user.uid")
		}
		for _, field := range fields {
			w, g := path(want, field), path(ev, field)
			if w == nil {
				continue // the sample leaves it out
			}
			if fmt.Sprint(w) != fmt.Sprint(g) {
				t.Errorf("%s: %s = %v, the sample has %v", name, field, g, w)
			}
		}
	}
}

// path reads a dotted path of nested JSON objects.
func path(m map[string]any, p string) any {
	var v any = m
	for _, k := range strings.Split(p, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}
