package archive_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/attest/attest/internal/archive"
)

// testStore checks the Store contract against s, which must start empty.
// Dir and S3 both run it.
func testStore(t *testing.T, s archive.Store) {
	t.Run("PutReadSize", func(t *testing.T) { testPutReadSize(t, s) })
	t.Run("ReadPastEnd", func(t *testing.T) { testReadPastEnd(t, s) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, s) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, s) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, s) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, s) })
	t.Run("BadNames", func(t *testing.T) { testBadNames(t, s) })
	t.Run("Large", func(t *testing.T) { testLarge(t, s) })
	t.Run("ConcurrentReadAt", func(t *testing.T) { testConcurrentReadAt(t, s) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, s) })
}

// randomBytes returns n bytes that depend only on seed.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func mustPut(t *testing.T, s archive.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, data, archive.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

// checkObject checks that the object name holds exactly want.
func checkObject(t *testing.T, s archive.Store, name string, want []byte) {
	t.Helper()
	size, err := s.Size(t.Context(), name)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("Size(%q) = %d, %v; want %d, nil", name, size, err, len(want))
	}
	got := make([]byte, len(want))
	n, err := s.ReadAt(t.Context(), name, got, 0)
	if n != len(want) || err != nil && err != io.EOF {
		t.Fatalf("ReadAt(%q, [%d], 0) = %d, %v; want %d, nil", name, len(want), n, err, len(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ReadAt(%q) returned other bytes than were put", name)
	}
}

func testPutReadSize(t *testing.T, s archive.Store) {
	const name = "tenant-3/0000000000000000-0000000000010000.seg"
	data := randomBytes(1, 1000)
	mustPut(t, s, name, data)
	checkObject(t, s, name, data)

	for _, r := range []struct{ off, n int }{{0, 10}, {990, 10}, {500, 1}, {1, 998}, {0, 1000}} {
		p := make([]byte, r.n)
		n, err := s.ReadAt(t.Context(), name, p, int64(r.off))
		if n != r.n || err != nil {
			t.Errorf("ReadAt(off %d, len %d) = %d, %v; want %d, nil", r.off, r.n, n, err, r.n)
			continue
		}
		if want := data[r.off : r.off+r.n]; !bytes.Equal(p, want) {
			t.Errorf("ReadAt(off %d, len %d) returned the wrong bytes", r.off, r.n)
		}
	}
}

func testReadPastEnd(t *testing.T, s archive.Store) {
	const name = "tenant-3/short.seg"
	data := randomBytes(2, 100)
	mustPut(t, s, name, data)

	tests := []struct {
		off, len int
		wantN    int
	}{
		{off: 95, len: 10, wantN: 5},
		{off: 0, len: 101, wantN: 100},
		{off: 100, len: 1, wantN: 0},
		{off: 1000, len: 5, wantN: 0},
	}
	for _, tt := range tests {
		p := make([]byte, tt.len)
		n, err := s.ReadAt(t.Context(), name, p, int64(tt.off))
		if n != tt.wantN || err != io.EOF {
			t.Errorf("ReadAt(off %d, len %d) = %d, %v; want %d, io.EOF",
				tt.off, tt.len, n, err, tt.wantN)
			continue
		}
		if !bytes.Equal(p[:n], data[min(tt.off, len(data)):][:n]) {
			t.Errorf("ReadAt(off %d, len %d) returned the wrong bytes", tt.off, tt.len)
		}
	}

	if n, err := s.ReadAt(t.Context(), name, nil, 50); n != 0 || err != nil {
		t.Errorf("ReadAt(empty buffer) = %d, %v; want 0, nil", n, err)
	}
	n, err := s.ReadAt(t.Context(), name, make([]byte, 1), -1)
	if n != 0 || err == nil || err == io.EOF {
		t.Errorf("ReadAt(off -1) = %d, %v; want 0 and an error other than io.EOF", n, err)
	}
}

func testEmpty(t *testing.T, s archive.Store) {
	const name = "tenant-3/empty"
	mustPut(t, s, name, nil)
	checkObject(t, s, name, nil)
	if n, err := s.ReadAt(t.Context(), name, make([]byte, 1), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(empty object) = %d, %v; want 0, io.EOF", n, err)
	}
}

func testOverwrite(t *testing.T, s archive.Store) {
	const name = "tenant-3/manifest.json"
	mustPut(t, s, name, randomBytes(3, 300))
	data := randomBytes(4, 200)
	mustPut(t, s, name, data)
	checkObject(t, s, name, data)
}

func testDelete(t *testing.T, s archive.Store) {
	const name = "tenant-4/a/b/c.seg"
	mustPut(t, s, name, randomBytes(5, 10))
	for i := range 2 {
		if err := s.Delete(t.Context(), name); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := s.Size(t.Context(), name); !errors.Is(err, archive.ErrNotExist) {
		t.Errorf("Size after Delete: err = %v; want ErrNotExist", err)
	}
}

func testMissing(t *testing.T, s archive.Store) {
	// "tenant-5" is a directory for Dir and a key prefix for S3, but no object.
	mustPut(t, s, "tenant-5/x.seg", randomBytes(6, 10))
	names := []string{"tenant-5/nothing.seg", "nothing", "tenant-5", "tenant-5/x.seg/y"}
	for _, name := range names {
		_, err := s.Size(t.Context(), name)
		checkNotExist(t, "Size("+name+")", err)
		_, err = s.ReadAt(t.Context(), name, make([]byte, 4), 0)
		checkNotExist(t, "ReadAt("+name+")", err)
		_, err = s.ReadAt(t.Context(), name, nil, 0)
		checkNotExist(t, "ReadAt("+name+", empty buffer)", err)
		if err := s.Delete(t.Context(), name); err != nil {
			t.Errorf("Delete(%s): %v; want nil", name, err)
		}
	}
	checkObject(t, s, "tenant-5/x.seg", randomBytes(6, 10))
}

func checkNotExist(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, archive.ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: err = %v; want one matching ErrNotExist and fs.ErrNotExist", call, err)
	}
}

func testBadNames(t *testing.T, s archive.Store) {
	tests := []struct{ name, reason string }{
		{"", "empty"},
		{"/tenant-3/a.seg", "absolute"},
		{"tenant-3/../a.seg", `".."`},
		{"..", `".."`},
		{"tenant-3/./a.seg", `"."`},
		{"tenant-3//a.seg", "empty path element"},
		{"tenant-3/", "empty path element"},
		{`tenant-3\a.seg`, "backslash"},
		{"tenant-3/a\x00.seg", "NUL"},
		{"tenant 3/a.seg", `' '`},
		{"tenant-3/ä.seg", `'ä'`},
		{"tenant-3/a.seg?x=1", `'?'`},
		{strings.Repeat("a", 513), "longer than"},
	}
	ctx := t.Context()
	for _, tt := range tests {
		calls := map[string]error{
			"Put":    s.Put(ctx, tt.name, []byte("x"), archive.PutOptions{}),
			"Delete": s.Delete(ctx, tt.name),
		}
		_, calls["ReadAt"] = s.ReadAt(ctx, tt.name, make([]byte, 1), 0)
		_, calls["Size"] = s.Size(ctx, tt.name)
		for call, err := range calls {
			if !errors.Is(err, archive.ErrInvalidName) {
				t.Errorf("%s(%q): err = %v; want ErrInvalidName", call, tt.name, err)
				continue
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "archive: ") || !strings.Contains(msg, tt.reason) ||
				len(tt.name) < 100 && !strings.Contains(msg, strconv.Quote(tt.name)) {
				t.Errorf("%s(%q): err = %q; want it to name the name and say %s",
					call, tt.name, msg, tt.reason)
			}
		}
	}
}

func testLarge(t *testing.T, s archive.Store) {
	const name = "tenant-6/large.seg"
	data := randomBytes(7, 20<<20)
	mustPut(t, s, name, data)
	checkObject(t, s, name, data)

	p := make([]byte, 3<<20)
	off := 10<<20 + 12345
	if n, err := s.ReadAt(t.Context(), name, p, int64(off)); n != len(p) || err != nil {
		t.Fatalf("ReadAt(off %d, len %d) = %d, %v", off, len(p), n, err)
	}
	if !bytes.Equal(p, data[off:off+len(p)]) {
		t.Errorf("ReadAt(off %d, len %d) returned the wrong bytes", off, len(p))
	}
}

func testConcurrentReadAt(t *testing.T, s archive.Store) {
	const name = "tenant-7/concurrent.seg"
	data := randomBytes(8, 1<<20)
	mustPut(t, s, name, data)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 0))
			for range 16 {
				off := r.IntN(len(data))
				p := make([]byte, 1+r.IntN(64<<10))
				n, err := s.ReadAt(t.Context(), name, p, int64(off))
				want := data[off:min(off+len(p), len(data))]
				if n != len(want) || n < len(p) && err != io.EOF || n == len(p) && err != nil {
					t.Errorf("ReadAt(off %d, len %d) = %d, %v; want %d",
						off, len(p), n, err, len(want))
					return
				}
				if !bytes.Equal(p[:n], want) {
					t.Errorf("ReadAt(off %d, len %d) returned the wrong bytes", off, len(p))
					return
				}
			}
		})
	}
	wg.Wait()
}

func testCancelled(t *testing.T, s archive.Store) {
	const name = "tenant-8/cancelled.seg"
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, name, []byte("x"), archive.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: err = %v; want context.Canceled", err)
	}
	if _, err := s.Size(t.Context(), name); !errors.Is(err, archive.ErrNotExist) {
		t.Errorf("Size after a cancelled Put: err = %v; want ErrNotExist", err)
	}
}
