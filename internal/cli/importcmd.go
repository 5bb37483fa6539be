package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/importer"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/tenant"
)

// importStats counts what became of the records of an import.
type importStats struct {
	records, accepted, duplicate, rejected int
	unread                                 int // files that could not be read to their end
}

func cmdImport(e *env, args []string) int {
	var sf storeFlags
	var format, tenantName string
	fs := newFlags(e, "import")
	fs.store(&sf)
	fs.StringVar(&format, "format", "", "input format: "+strings.Join(importer.Formats, ", "))
	fs.StringVar(&tenantName, "tenant", tenant.Default, "tenant whose log receives the events")
	fs.takes("FILE... (- reads standard input)", -1)
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	if !importer.ValidFormat(format) {
		return usageErr(e, "--format must be one of %s", strings.Join(importer.Formats, ", "))
	}
	if fs.NArg() == 0 {
		return usageErr(e, "usage: attest import --format FORMAT [--tenant T] FILE... (- reads standard input)")
	}
	if tenantName == tenant.Operator {
		return usageErr(e, "--tenant: the operator tenant holds attest's own trail and takes no imported events")
	}
	ctx := context.Background()
	in, t, code := sf.openTenant(ctx, e, tenantName)
	if code != 0 {
		return code
	}
	defer in.Close()
	defer publish(ctx, in)
	imp := &fileImport{e: e, in: in, t: t, format: format, start: time.Now(), lastReport: time.Now()}
	var total importStats
	var files int
	var ferr error
	for _, name := range fs.Args() {
		st, rerr, err := imp.file(ctx, name)
		files++
		total.records += st.records
		total.accepted += st.accepted
		total.duplicate += st.duplicate
		total.rejected += st.rejected
		if err != nil {
			ferr = fmt.Errorf("%s: %w", name, err)
			break
		}
		if rerr != nil {
			// What was read before the error is committed and counted;
			// the other files are still imported.
			total.unread++
			fmt.Fprintf(e.stderr, "attest: %s: %v\n", name, rerr)
			if st.records == 0 {
				continue
			}
			fmt.Fprintf(e.stdout, "%s: %d records read before an error: %d imported, %d already present, %d rejected; "+
				"the rest of the file was not read\n", name, st.records, st.accepted, st.duplicate, st.rejected)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %d records: %d imported, %d already present, %d rejected\n",
			name, st.records, st.accepted, st.duplicate, st.rejected)
	}
	if err := imp.record(ctx, total, files, fs.NArg(), ferr); err != nil {
		return fail(e, "the import could not be recorded in %s's audit log: %v", t.Name, err)
	}
	if ferr != nil {
		return fail(e, "%v", ferr)
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(e.stdout, "total: %d records: %d imported, %d already present, %d rejected", total.records,
			total.accepted, total.duplicate, total.rejected)
		if total.unread > 0 {
			fmt.Fprintf(e.stdout, "; %d of %d files could not be read to the end", total.unread, fs.NArg())
		}
		fmt.Fprintln(e.stdout)
	}
	if total.rejected > 0 || total.unread > 0 {
		return exitProblem
	}
	return exitOK
}

// record logs the import in its tenant's trail: how many files and records
// and what became of them, never what they held.
func (fi *fileImport) record(ctx context.Context, total importStats, files, of int, err error) error {
	out := event.Outcome{Result: "success"}
	switch {
	case err != nil:
		out = event.Outcome{Result: "error", Reason: fmt.Sprintf("stopped by an error in file %d of %d", files, of)}
	case total.unread > 0:
		out = event.Outcome{Result: "failure", Reason: fmt.Sprintf("%d of %d files could not be read to the end; "+
			"%d of %d records rejected", total.unread, of, total.rejected, total.records)}
	case total.rejected > 0:
		out = event.Outcome{Result: "failure", Reason: fmt.Sprintf("%d of %d records rejected", total.rejected,
			total.records)}
	}
	h := &hostRecord{cmd: "import", action: "audit.events.import", category: "data_change", start: fi.start,
		outcome: out, details: map[string]any{"format": fi.format, "files": of, "records": total.records,
			"accepted": total.accepted, "duplicate": total.duplicate, "rejected": total.rejected, "unread_files": total.unread}}
	return h.record(ctx, fi.in, fi.t)
}

type fileImport struct {
	e          *env
	in         *instance.Instance
	t          *tenant.Tenant
	format     string
	start      time.Time
	lastReport time.Time
	done       int
}

const importChunk = 2000

// file imports one file. readErr says why the file could not be read to
// its end; what was read before is committed all the same. err is a failure
// to commit, which stops the import.
func (fi *fileImport) file(ctx context.Context, name string) (st importStats, readErr, err error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return st, err, nil
		}
		defer f.Close()
		// Damaged gzip data is refused whole before anything of it is
		// stored; a file cut short is imported up to the cut.
		if err := importer.CheckGzip(f); errors.Is(err, importer.ErrDamagedGzip) {
			return st, fmt.Errorf("%w; nothing of this file was imported", err), nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return st, err, nil
		}
		r = f
	}
	var chunk []*event.Event
	var pos []string // where each record of chunk is in its file
	// One chunk commits while the next is read and prepared.
	type outcome struct {
		accepted, duplicate, rejected int
		err                           error
	}
	pending := make(chan outcome, 1)
	pending <- outcome{}
	merge := func(o outcome) error {
		st.accepted += o.accepted
		st.duplicate += o.duplicate
		st.rejected += o.rejected
		return o.err
	}
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		ps, err := fi.in.Log.PrepareAll(ctx, fi.t, chunk)
		if err != nil {
			return err
		}
		if err := merge(<-pending); err != nil {
			return err
		}
		positions := pos
		chunk, pos = nil, nil
		go func() {
			var o outcome
			rs, err := fi.in.Log.Append(ctx, fi.t, ps)
			for i, r := range rs {
				switch {
				case r.Err != nil:
					o.rejected++
					fmt.Fprintf(fi.e.stderr, "%s: %s: %v\n", name, positions[i], r.Err)
				case r.Duplicate:
					o.duplicate++
				default:
					o.accepted++
				}
			}
			o.err = err
			fi.progress(len(rs))
			pending <- o
		}()
		return nil
	}
	var commitErr error
	rerr := importer.Read(fi.format, r, &importer.Options{Limits: &event.Limits{Now: fi.in.Now}}, func(rec importer.Record) error {
		st.records++
		if rec.Err != nil {
			st.rejected++
			fmt.Fprintf(fi.e.stderr, "%s: %s: %v\n", name, rec.Position(), reason(rec.Err))
			return nil
		}
		if rec.Event.Tenant != "" && rec.Event.Tenant != fi.t.Name {
			// Every record goes to --tenant; one that names another is
			// refused rather than moved.
			st.rejected++
			fmt.Fprintf(fi.e.stderr, "%s: %s: tenant: names %q, but this import goes to tenant %q (--tenant)\n",
				name, rec.Position(), rec.Event.Tenant, fi.t.Name)
			return nil
		}
		chunk = append(chunk, rec.Event)
		pos = append(pos, rec.Position())
		if len(chunk) >= importChunk {
			if err := flush(); err != nil {
				commitErr = err
				return err
			}
		}
		return nil
	})
	if commitErr == nil {
		readErr = rerr
		commitErr = flush()
	}
	if perr := merge(<-pending); commitErr == nil {
		commitErr = perr
	}
	return st, readErr, commitErr
}

func reason(err error) string {
	var fe *event.FieldError
	if errors.As(err, &fe) {
		return fe.Field + ": " + fe.Reason
	}
	return err.Error()
}

// progress prints a line every few seconds on long imports.
func (fi *fileImport) progress(n int) {
	fi.done += n
	if time.Since(fi.lastReport) < 3*time.Second {
		return
	}
	fi.lastReport = time.Now()
	el := time.Since(fi.start).Seconds()
	fmt.Fprintf(fi.e.stderr, "imported %d events so far (%.0f/s)\n", fi.done, float64(fi.done)/el)
}
