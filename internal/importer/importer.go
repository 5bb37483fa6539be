// Package importer reads audit records written by other systems (AWS
// CloudTrail, Kubernetes audit logs) and attest's own NDJSON, and maps each
// record to an audit event. A malformed record is reported with its
// position and the reason, and never stops the records after it.
package importer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/attest/attest/internal/event"
)

// Formats lists the formats an importer exists for.
var Formats = []string{"cloudtrail", "kubernetes", "ndjson"}

// Record is one record of an input: the event it maps to, or why it could
// not be mapped.
type Record struct {
	// Index is the record's position among the records of its input, from
	// zero.
	Index int
	// Line is the line the record is on, from one, in inputs of one record
	// a line; zero for records read out of JSON arrays and Records objects.
	Line  int
	Event *event.Event
	Err   error
}

// Position names where the record is in its input, counting from one:
// "line N" in inputs of one record a line, "record N" otherwise.
func (r Record) Position() string {
	if r.Line > 0 {
		return "line " + strconv.Itoa(r.Line)
	}
	return "record " + strconv.Itoa(r.Index+1)
}

// Options tune the importers.
type Options struct {
	// Limits bound the events, as for the ingest API.
	Limits *event.Limits
	// MaxRecordBytes bounds one record; zero means 1 MiB.
	MaxRecordBytes int
}

func (o *Options) maxRecord() int {
	if o.MaxRecordBytes > 0 {
		return o.MaxRecordBytes
	}
	return 1 << 20
}

// Read reads every record of r in the given format and calls emit for each,
// in order. Input that is gzip-compressed is decompressed first. It returns
// an error only when the input as a whole cannot be read; each record's own
// problems are reported through emit. emit returning an error stops Read.
func Read(format string, r io.Reader, opts *Options, emit func(Record) error) error {
	if opts == nil {
		opts = &Options{}
	}
	if opts.Limits == nil {
		opts.Limits = &event.Limits{}
	}
	r, err := maybeGunzip(r)
	if err != nil {
		return err
	}
	switch format {
	case "cloudtrail":
		return readCloudTrail(r, opts, emit)
	case "kubernetes":
		return readKubernetes(r, opts, emit)
	case "ndjson":
		return readLines(r, opts, emit, func(line []byte, opts *Options) (*event.Event, error) {
			return event.DecodeProducer(line, opts.Limits)
		})
	}
	return fmt.Errorf("importer: unknown format %q; use one of %v", format, Formats)
}

// ValidFormat reports whether an importer exists for format.
func ValidFormat(format string) bool { return slices.Contains(Formats, format) }

// maybeGunzip returns a reader of r's content, decompressed when r starts
// with the gzip magic number.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("importer: read input: %w", err)
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("importer: gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// ErrDamagedGzip means gzip data fails its checks: what it decompresses to
// cannot be trusted, not even before the damage.
var ErrDamagedGzip = errors.New("damaged gzip data")

// CheckGzip reads r to its end when it is gzip data and checks it. A
// stream cut short is io.ErrUnexpectedEOF: what it holds before the cut is
// as it was written. Any other failure, such as a bad checksum, is
// ErrDamagedGzip. Input that is not gzip passes.
func CheckGzip(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return nil
	}
	zr, err := gzip.NewReader(br)
	if err == nil {
		_, err = io.Copy(io.Discard, zr)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the gzip data is cut short: %w", err)
	}
	return fmt.Errorf("%w: %v", ErrDamagedGzip, err)
}

// ErrRecordTooLarge reports a record larger than the limit.
var ErrRecordTooLarge = errors.New("record larger than the limit")

// ReadNDJSON calls fn for each non-blank line of r with the line's index
// among non-blank lines. A line longer than max is skipped and reported to
// fn with ErrRecordTooLarge; reading goes on with the next line.
func ReadNDJSON(r io.Reader, max int, fn func(i int, line []byte, err error) error) error {
	return scanLines(r, max, func(i, _ int, line []byte, err error) error { return fn(i, line, err) })
}

// scanLines is ReadNDJSON that also passes fn each line's number, from one.
func scanLines(r io.Reader, max int, fn func(i, lineNo int, line []byte, err error) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	i := 0
	for lineNo := 1; ; lineNo++ {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf[:0], chunk...)
		for errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = br.ReadSlice('\n')
			// Past max plus a line ending, the rest cannot change the verdict.
			if len(buf) <= max+2 {
				buf = append(buf, chunk...)
			}
		}
		tooLong := lineLen(buf) > max
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("importer: read line %d: %w", lineNo, err)
		}
		line := bytes.TrimSpace(buf)
		if len(line) > 0 || tooLong {
			var lerr error
			if tooLong {
				lerr = fmt.Errorf("%w (%d bytes)", ErrRecordTooLarge, max)
				line = nil
			}
			if ferr := fn(i, lineNo, line, lerr); ferr != nil {
				return ferr
			}
			i++
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// lineLen is the length of line without its line ending.
func lineLen(line []byte) int {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return len(bytes.TrimSuffix(line, []byte("\r")))
}
