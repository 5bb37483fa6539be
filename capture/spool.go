package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// spool is the on-disk buffer: batches of NDJSON events that could not be
// sent yet, one file each, named by a counter so that the oldest sorts
// first. A file is written whole under a temporary name, synced and then
// renamed, so that a crash leaves either the whole batch or none of it.
type spool struct {
	dir   string
	files []spoolFile // oldest first
	bytes int64
	next  uint64
}

type spoolFile struct {
	name   string
	size   int64
	events int
}

const spoolExt = ".ndjson"

// openSpool reads what an earlier client left in dir, creating dir if it
// does not exist.
func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture: buffer directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("capture: buffer directory: %w", err)
	}
	s := &spool{dir: dir}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			// A batch whose write a crash cut short: it was never whole
			// on disk, and its events went with the process's memory.
			os.Remove(filepath.Join(dir, name))
			continue
		}
		n, ok := strings.CutSuffix(name, spoolExt)
		seq, err := strconv.ParseUint(n, 10, 64)
		if !ok || err != nil || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("capture: buffered batch: %w", err)
		}
		if countEvents(b) == 0 {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		s.files = append(s.files, spoolFile{name: name, size: int64(len(b)), events: countEvents(b)})
		s.bytes += int64(len(b))
		s.next = max(s.next, seq+1)
	}
	slices.SortFunc(s.files, func(a, b spoolFile) int { return strings.Compare(a.name, b.name) })
	return s, nil
}

func countEvents(b []byte) int {
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

// add writes a batch of encoded events, one per line, durably.
func (s *spool) add(lines [][]byte) error {
	buf := joinLines(lines)
	size := int64(len(buf))
	name := fmt.Sprintf("%020d%s", s.next, spoolExt)
	tmp := filepath.Join(s.dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("capture: buffer a batch: %w", err)
	}
	_, werr := f.Write(buf)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("capture: buffer a batch: %w", werr)
	}
	syncDir(s.dir)
	s.next++
	s.files = append(s.files, spoolFile{name: name, size: size, events: len(lines)})
	s.bytes += size
	return nil
}

// oldest returns the oldest batch's content, or nil when there is none.
func (s *spool) oldest() (*spoolFile, []byte, error) {
	if len(s.files) == 0 {
		return nil, nil, nil
	}
	f := &s.files[0]
	b, err := os.ReadFile(filepath.Join(s.dir, f.name))
	if err != nil {
		return nil, nil, fmt.Errorf("capture: read a buffered batch: %w", err)
	}
	return f, b, nil
}

// remove deletes the oldest batch once attest has it.
func (s *spool) remove() error {
	f := s.files[0]
	if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("capture: remove a sent batch: %w", err)
	}
	syncDir(s.dir)
	s.files = s.files[1:]
	s.bytes -= f.size
	return nil
}

func (s *spool) events() int {
	n := 0
	for _, f := range s.files {
		n += f.events
	}
	return n
}

// syncDir makes a rename or removal in dir durable where the system allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
