// Package cli is attest's command line: it parses flags and ATTEST_*
// environment variables into configuration, wires the instance, the server
// and the one-shot commands, and turns their outcome into an exit code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"sort"
	"strings"
	"time"

	"github.com/attest/attest/internal/archive"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/tenant"
)

// Version is attest's version, set at build time.
var Version = "0.1.0-dev"

// Exit codes.
const (
	exitOK      = 0
	exitProblem = 1 // the command ran and found a problem: a failed verification, a rejected record
	exitUsage   = 2
)

type command struct {
	name    string
	summary string
	run     func(env *env, args []string) int
}

func commands() []command {
	return []command{
		{"serve", "run the API server on the data directory or database, initialising it if new", cmdServe},
		{"init", "initialise a data directory or database without serving, printing the bootstrap key", cmdInit},
		{"tenant", "create and list tenants (tenant create NAME, tenant list)", cmdTenant},
		{"apikey", "create, list and revoke API keys", cmdAPIKey},
		{"user", "list, disable, enable and delete accounts, issue enrolment links, disable inactive accounts", cmdUser},
		{"breakglass", "the host-only emergency operator credential (breakglass init, use, rotate, status)", cmdBreakGlass},
		{"controls", "run the SOC 2 control tests now and record their results (controls validate)", cmdControls},
		{"report", "generate a tenant's SOC 2 report and verify a report's signed manifest (report soc2, report verify)",
			cmdReport},
		{"subject", "erase a data subject's personal values (subject erase --tenant T --subject ID --reason TEXT)", cmdSubject},
		{"retention", "apply or change the retention of audit trails: archive, expire, legal hold (retention run, show, set, hold, release)",
			cmdRetention},
		{"backup", "copy the data directory and its SQLite database into a new directory (backup --out DIR)", cmdBackup},
		{"import", "import CloudTrail, Kubernetes audit or NDJSON files into a tenant's log", cmdImport},
		{"verify", "verify the audit log: every entry, the tree, the checkpoints", cmdVerify},
		{"audit", "query the audit trail, print the public key or the latest checkpoint", cmdAudit},
		{"bench", "measure ingest, query and verify speed on a fresh server", cmdBench},
		{"version", "print attest's version", cmdVersion},
	}
}

func cmdVersion(e *env, args []string) int {
	if err := newFlags(e, "version").parse(args); err != nil {
		return parseExit(err)
	}
	fmt.Fprintln(e.stdout, "attest", Version)
	return exitOK
}

// env is what every command gets.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// Main runs attest with the given arguments and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "attest: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "attest: the SOC 2 audit trail and control plane\n\nUsage: attest COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set with an ATTEST_ variable: --data-dir is ATTEST_DATA_DIR.\n"+
		"Run attest COMMAND -h for a command's flags.")
}

// flags wraps a flag set so that each flag can come from its ATTEST_*
// variable, or for secrets from a file named by ATTEST_*_FILE.
type flags struct {
	*flag.FlagSet
	e       *env
	secrets map[string]bool
	// operands names the positional arguments in the usage line, such as
	// NAME or FILE...; maxArgs is how many there may be, -1 for any number.
	operands string
	maxArgs  int
	// envSet holds the flags set from their environment variables.
	envSet map[string]bool
}

func newFlags(e *env, name string) *flags {
	fs := flag.NewFlagSet("attest "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {} // parse prints the usage: on stdout when asked for it
	return &flags{FlagSet: fs, e: e, secrets: map[string]bool{}, envSet: map[string]bool{}}
}

// takes declares the positional arguments a command takes: their names
// for the usage line, and at most how many, -1 for any number. Without it
// a command takes none.
func (f *flags) takes(operands string, max int) {
	f.operands, f.maxArgs = operands, max
}

func (f *flags) synopsis() string {
	s := f.Name() + " [flags]"
	if f.operands != "" {
		s += " " + f.operands
	}
	return s
}

// usage prints the command's synopsis and flags.
func (f *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", f.synopsis())
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(f.e.stderr)
}

func envName(flagName string) string {
	return "ATTEST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// secret marks a flag whose value must never be printed.
func (f *flags) secret(name string) { f.secrets[name] = true }

// parse parses args, then fills every flag not given on the command line
// from its environment variable, and checks the number of positional
// arguments and that every duration given is positive. Flags may come
// before or after the positional arguments; "--" ends the flags. Errors
// are printed; -h prints the usage on standard output and returns
// flag.ErrHelp (see parseExit).
func (f *flags) parse(args []string) error {
	if err := f.parseArgs(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.usage(f.e.stdout)
		} else {
			f.usage(f.e.stderr)
		}
		return err
	}
	err := f.fromEnv()
	if err == nil {
		err = f.check()
	}
	if err != nil {
		fmt.Fprintf(f.e.stderr, "attest: %v\n", err)
	}
	return err
}

// parseExit is the exit code of a command whose parse returned err.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func (f *flags) parseArgs(args []string) error {
	var positional []string
	for {
		if err := f.Parse(args); err != nil {
			return err
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return f.Parse(append([]string{"--"}, positional...))
}

// check refuses surplus positional arguments and a duration flag given a
// value that is not positive.
func (f *flags) check() error {
	if f.maxArgs >= 0 && f.NArg() > f.maxArgs {
		return fmt.Errorf("unexpected argument %q; usage: %s", f.Arg(f.maxArgs), f.synopsis())
	}
	var err error
	f.Visit(func(fl *flag.Flag) {
		g, ok := fl.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		if d, ok := g.Get().(time.Duration); ok && d <= 0 {
			err = fmt.Errorf("%s must be a positive duration such as 30s or 720h, not %s", f.source(fl.Name), fl.Value)
		}
	})
	return err
}

// source names where a flag's value came from: --name or ATTEST_NAME.
func (f *flags) source(name string) string {
	if f.envSet[name] {
		return envName(name)
	}
	return "--" + name
}

// fromEnv fills every flag not given on the command line from its
// environment variable.
func (f *flags) fromEnv() error {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var err error
	f.VisitAll(func(fl *flag.Flag) {
		if set[fl.Name] || err != nil {
			return
		}
		name := envName(fl.Name)
		v, ok := f.lookup(name)
		if f.secrets[fl.Name] {
			if file := f.e.getenv(name + "_FILE"); file != "" && !ok {
				b, rerr := os.ReadFile(file)
				if rerr != nil {
					err = fmt.Errorf("%s_FILE: %w", name, rerr)
					return
				}
				v, ok = strings.TrimSpace(string(b)), true
			}
		}
		if ok {
			if serr := f.Set(fl.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
			f.envSet[fl.Name] = true
		}
	})
	return err
}

func (f *flags) lookup(name string) (string, bool) {
	v := f.e.getenv(name)
	return v, v != ""
}

// effective returns the effective configuration, secrets redacted.
func (f *flags) effective() []any {
	var out []any
	var names []string
	f.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	sort.Strings(names)
	for _, n := range names {
		v := f.Lookup(n).Value.String()
		switch {
		case n == "database-url" && v != "":
			v = redactDSN(v)
		case f.secrets[n] && v != "":
			v = "REDACTED"
		}
		out = append(out, slog.String(strings.ReplaceAll(n, "-", "_"), v))
	}
	return out
}

// storeFlags are the flags every command that opens the store takes.
type storeFlags struct {
	dataDir     string
	databaseURL string
	logFormat   string
	logLevel    string
	s3          archive.S3Config
}

func (f *flags) store(sf *storeFlags) {
	f.StringVar(&sf.dataDir, "data-dir", "./attest-data", "data directory: keys, TLS certificate and the SQLite database")
	f.StringVar(&sf.databaseURL, "database-url", "", "PostgreSQL URL (postgres://...); empty means SQLite in the data directory")
	f.secret("database-url")
	f.StringVar(&sf.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&sf.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&sf.s3.Endpoint, "archive-s3-endpoint", "", "S3-compatible endpoint (host[:port]) for archive "+
		"segments; empty keeps them under the data directory's archive folder")
	f.StringVar(&sf.s3.Bucket, "archive-s3-bucket", "", "bucket for archive segments (with --archive-s3-endpoint)")
	f.StringVar(&sf.s3.Prefix, "archive-s3-prefix", "", "key prefix for archive segments in the bucket")
	f.StringVar(&sf.s3.Region, "archive-s3-region", "", "the bucket's region; empty asks the server")
	f.StringVar(&sf.s3.AccessKey, "archive-s3-access-key", "", "S3 access key id")
	f.StringVar(&sf.s3.SecretKey, "archive-s3-secret-key", "", "S3 secret key; prefer ATTEST_ARCHIVE_S3_SECRET_KEY_FILE")
	f.secret("archive-s3-secret-key")
	f.BoolVar(&sf.s3.Insecure, "archive-s3-insecure", false, "talk plain HTTP to the S3 endpoint (local testing only)")
	f.BoolVar(&sf.s3.ObjectLock, "archive-s3-object-lock", false, "lock each archive object (S3 Object Lock, "+
		"COMPLIANCE mode) until its retention ends; the bucket must have Object Lock enabled")
}

// archive opens the archive store the flags name: an S3-compatible bucket,
// or nil for the default under the data directory.
func (sf *storeFlags) archive(ctx context.Context) (archive.Store, error) {
	if sf.s3.Endpoint == "" {
		if sf.s3.Bucket != "" || sf.s3.AccessKey != "" || sf.s3.SecretKey != "" {
			return nil, usagef("--archive-s3-endpoint is required with the other --archive-s3 flags")
		}
		return nil, nil
	}
	s, err := archive.NewS3(ctx, sf.s3)
	if err != nil {
		return nil, fmt.Errorf("archive store: %w", err)
	}
	return s, nil
}

// setup validates the store flags, before anything could log them, and
// returns the logger they ask for. A keyword=value database URL is turned
// into the URL form the store opens.
func (sf *storeFlags) setup(w io.Writer) (*slog.Logger, error) {
	if sf.dataDir == "" {
		if sf.databaseURL != "" {
			return nil, errors.New("--data-dir is required with --database-url: " +
				"it holds the log signing key and the key-encryption key")
		}
		return nil, errors.New("--data-dir must not be empty")
	}
	if sf.databaseURL != "" {
		u, err := connURL(sf.databaseURL)
		if err != nil {
			return nil, err
		}
		sf.databaseURL = u
	}
	return sf.logger(w)
}

func (sf *storeFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(sf.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch sf.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", sf.logFormat)
}

// open opens the store of a one-shot command, which attest init or serve
// must have initialised: it looks first, so that a store that is missing,
// empty or half-made is refused untouched rather than initialised.
func (sf *storeFlags) open(ctx context.Context, log *slog.Logger, name string) (*instance.Instance, error) {
	if _, err := sf.probe(ctx); err != nil {
		return nil, err
	}
	if err := sf.checkKeyFiles(); err != nil {
		return nil, err
	}
	if err := sf.checkSecrets(log); err != nil {
		return nil, err
	}
	arch, err := sf.archive(ctx)
	if err != nil {
		return nil, err
	}
	return instance.Open(ctx, instance.Options{DataDir: sf.dataDir, DatabaseURL: sf.databaseURL, Name: name, Logger: log,
		MustExist: true, Log: auditlog.Config{Archive: arch}})
}

// hostActor is the actor of commands run on the host: the operating system
// user, or "cli" when it cannot be told.
func hostActor() event.Actor {
	name := "cli"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return event.Actor{Type: "user", ID: "host:" + name, Name: name, Auth: event.Auth{Method: "host_cli"}}
}

func hostDecorate(cmd string) func(*event.Event) {
	host, _ := os.Hostname()
	return func(ev *event.Event) {
		ev.Source = event.Source{Name: event.SelfSource, Host: host, Version: Version}
		ev.Request = event.Request{ID: "cli-" + fmt.Sprint(time.Now().UnixNano()), Method: "CLI", Path: "attest " + cmd,
			DurationMicros: -1}
	}
}

// openTenant sets up logging, opens the store of a one-shot command and
// finds the tenant called name. When it cannot, it says why and returns the
// exit code; otherwise the code is 0 and the caller closes in.
func (sf *storeFlags) openTenant(ctx context.Context, e *env, name string) (in *instance.Instance, t *tenant.Tenant, code int) {
	log, err := sf.setup(e.stderr)
	if err != nil {
		return nil, nil, usageErr(e, "%v", err)
	}
	if in, err = sf.open(ctx, log, ""); err != nil {
		return nil, nil, failErr(e, err)
	}
	if t, err = tenantNamed(ctx, in, name); err != nil {
		in.Close()
		return nil, nil, failErr(e, err)
	}
	return in, t, 0
}

// tenantNamed returns the tenant called name, with a message naming the flag.
func tenantNamed(ctx context.Context, in *instance.Instance, name string) (*tenant.Tenant, error) {
	t, err := in.Tenants.ByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, usagef("--tenant: no tenant named %q (attest tenant list shows them)", name)
	}
	return t, err
}

// usageError is a mistake in a command line, such as a flag naming
// something that does not exist: the command exits with exitUsage.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// failErr prints err and returns exitUsage for a usage error, exitProblem
// for any other.
func failErr(e *env, err error) int {
	fmt.Fprintf(e.stderr, "attest: %v\n", err)
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitProblem
}

// isHelp reports whether a command's first argument asks for its usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// help prints the usage of a command with subcommands on standard output.
func help(e *env, use string) int {
	fmt.Fprintf(e.stdout, "Usage: %s\n\nRun a subcommand with -h for its flags.\n", strings.TrimPrefix(use, "usage: "))
	return exitOK
}

func fail(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "attest: "+format+"\n", args...)
	return exitProblem
}

func usageErr(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "attest: "+format+"\n", args...)
	return exitUsage
}

// publish signs a checkpoint for whatever a one-shot command appended, so
// that it is covered at once even when no server is running.
func publish(ctx context.Context, in *instance.Instance) {
	_, err := in.Log.PublishCheckpoints(ctx)
	switch {
	case errors.Is(err, auditlog.ErrRefusedToSign):
		in.Logger.Error("the log does not match what was signed before; run attest verify", "error", err)
	case err != nil:
		in.Logger.Warn("could not sign a checkpoint; a running server will", "error", err)
	}
}
