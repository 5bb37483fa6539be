package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/attest/attest/internal/access"
	"github.com/attest/attest/internal/auditlog"
	"github.com/attest/attest/internal/event"
	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/instance"
	"github.com/attest/attest/internal/ratelimit"
	"github.com/attest/attest/internal/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

type serveConfig struct {
	storeFlags
	addr               string
	tlsCert, tlsKey    string
	maxBody            string
	maxEvents          int
	trustedProxies     string
	redisURL           string
	rpID, rpOrigins    string
	instanceName       string
	personal           string
	checkpointInterval time.Duration
	shutdownTimeout    time.Duration
	retentionInterval  time.Duration
	retentionJob       bool
}

func cmdServe(e *env, args []string) int {
	var c serveConfig
	fs := newFlags(e, "serve")
	fs.store(&c.storeFlags)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8443", "listen address (TLS 1.3 only)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file; empty means a self-signed certificate for localhost")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS key file for --tls-cert")
	fs.StringVar(&c.maxBody, "max-body", "32MiB", "largest request body, after decompression")
	fs.IntVar(&c.maxEvents, "max-events", 100000, "most events one ingest request may carry")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is trusted")
	fs.StringVar(&c.redisURL, "redis-url", "", "Redis URL (redis:// or rediss://) for rate-limit buckets shared by replicas; "+
		"empty keeps them in this process; prefer ATTEST_REDIS_URL_FILE when it holds a password")
	fs.secret("redis-url")
	fs.StringVar(&c.rpID, "webauthn-rp-id", "localhost", "the domain passkeys are registered for: the host name people "+
		"reach attest by")
	fs.StringVar(&c.rpOrigins, "webauthn-origins", "", "comma-separated origins passkey ceremonies may come from; "+
		"empty means https://RP-ID:PORT of --addr")
	fs.StringVar(&c.instanceName, "instance-name", "", "instance name in checkpoint origins, fixed when the database is created")
	fs.StringVar(&c.personal, "personal-fields", strings.Join(event.DefaultPersonal, ","),
		"event fields stored as personal data (committed in the log, sealed per subject); choose from "+
			strings.Join(event.ConfigurablePersonal, ","))
	fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", 500*time.Millisecond, "how often new entries are checkpointed")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	fs.BoolVar(&c.retentionJob, "retention", true, "apply every tenant's retention policy in the background: archive "+
		"entries older than the hot window, delete payloads whose retention has ended (attest retention run does it once)")
	fs.DurationVar(&c.retentionInterval, "retention-interval", 24*time.Hour, "how often the retention job runs; "+
		"the first run is a minute after start")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	tuneGC()
	log, err := c.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	maxBody, err := parseSize(c.maxBody)
	if err != nil {
		return usageErr(e, "--max-body: %v", err)
	}
	if c.maxEvents <= 0 {
		return usageErr(e, "--max-events must be positive")
	}
	proxies, err := parsePrefixes(c.trustedProxies)
	if err != nil {
		return usageErr(e, "--trusted-proxies: %v", err)
	}
	var limiter ratelimit.Limiter
	if c.redisURL != "" {
		ro, err := ratelimit.ParseRedisURL(c.redisURL)
		if err != nil {
			return usageErr(e, "%v", err)
		}
		rc := redis.NewClient(ro)
		defer rc.Close()
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		perr := rc.Ping(pctx).Err()
		cancel()
		if perr != nil {
			return fail(e, "--redis-url: Redis does not answer at %s", ro.Addr)
		}
		limiter = ratelimit.NewRedis(rc, "attest:rl:", nil)
	}
	var pers []string
	for _, p := range strings.Split(c.personal, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(event.ConfigurablePersonal, p) {
			return usageErr(e, "--personal-fields: %q cannot be personal; choose from %s", p,
				strings.Join(event.ConfigurablePersonal, ", "))
		}
		pers = append(pers, p)
	}
	if c.retentionInterval < time.Minute {
		return usageErr(e, "--retention-interval must be at least 1m")
	}
	if c.checkpointInterval <= 0 || c.checkpointInterval > time.Minute {
		return usageErr(e, "--checkpoint-interval must be between 1ms and 1m")
	}
	if err := c.checkCreate(); err != nil {
		return usageErr(e, "%v", err)
	}
	if err := c.checkSecrets(log, c.tlsKeyFile()); err != nil {
		return failErr(e, err)
	}
	log.Info("effective configuration", fs.effective()...)
	if err := c.checkExisting(context.Background()); err != nil {
		return failErr(e, err)
	}
	// The address is taken first, so that a busy port stops serve before
	// it creates anything or prints a bootstrap key.
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fail(e, "listen on %s: %v", c.addr, err)
	}
	served := false
	defer func() {
		if !served {
			ln.Close()
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	arch, err := c.archive(ctx)
	if err != nil {
		return failErr(e, err)
	}
	in, err := instance.Open(ctx, instance.Options{DataDir: c.dataDir, DatabaseURL: c.databaseURL, Name: c.instanceName,
		Personal: pers, Logger: log, Log: auditlog.Config{Metrics: auditlog.NewMetrics(reg), Archive: arch}})
	if err != nil {
		return fail(e, "open: %v", err)
	}
	defer in.DB.Close()
	if err := in.Identity.Passkeys.Configure(c.passkeys()); err != nil {
		in.Log.Close()
		return usageErr(e, "--webauthn-rp-id, --webauthn-origins: %v", err)
	}
	if err := bootstrap(ctx, e, in, c); err != nil {
		in.Log.Close()
		return fail(e, "bootstrap: %v", err)
	}
	cert, created, err := server.LoadCertificate(c.tlsCert, c.tlsKey, c.dataDir, time.Now())
	if err != nil {
		in.Log.Close()
		return failErr(e, err)
	}
	if created {
		log.Info("created a self-signed TLS certificate for localhost", "path", filepath.Join(c.dataDir, "tls", "cert.pem"))
	}
	srv, err := server.New(in, server.Config{Addr: c.addr, MaxBodyBytes: maxBody, MaxEvents: c.maxEvents, TrustedProxies: proxies,
		CheckpointInterval: c.checkpointInterval, ShutdownTimeout: c.shutdownTimeout, Version: Version, Registry: reg,
		Logger: log, RetentionInterval: retentionInterval(c), Limiter: limiter})
	if err != nil {
		in.Log.Close()
		return failErr(e, err)
	}
	served = true
	if err := srv.Run(ctx, ln, cert); err != nil {
		return fail(e, "serve: %v", err)
	}
	log.Info("attest stopped cleanly")
	return exitOK
}

// passkeys is the WebAuthn relying party of the flags: the origin defaults
// to the RP ID at the listen port.
func (c serveConfig) passkeys() identity.PasskeyConfig {
	pc := identity.PasskeyConfig{RPID: c.rpID}
	for _, o := range strings.Split(c.rpOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			pc.Origins = append(pc.Origins, o)
		}
	}
	if len(pc.Origins) == 0 {
		_, port, _ := net.SplitHostPort(c.addr)
		pc.Origins = []string{"https://" + net.JoinHostPort(c.rpID, port)}
	}
	return pc
}

func retentionInterval(c serveConfig) time.Duration {
	if !c.retentionJob {
		return -1
	}
	return c.retentionInterval
}

// cmdInit initialises a data directory or database as serve would, and
// prints the bootstrap key, without serving: for scripted deployments, and
// before the first one-shot command.
func cmdInit(e *env, args []string) int {
	var c serveConfig
	fs := newFlags(e, "init")
	fs.store(&c.storeFlags)
	fs.StringVar(&c.instanceName, "instance-name", "", "instance name in checkpoint origins, fixed when the database is created")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8443", "the address serve will listen on, for the example printed")
	if err := fs.parse(args); err != nil {
		return parseExit(err)
	}
	tuneGC()
	log, err := c.setup(e.stderr)
	if err != nil {
		return usageErr(e, "%v", err)
	}
	if err := c.checkCreate(); err != nil {
		return usageErr(e, "%v", err)
	}
	if err := c.checkSecrets(log, c.tlsKeyFile()); err != nil {
		return failErr(e, err)
	}
	if err := c.checkExisting(context.Background()); err != nil {
		return failErr(e, err)
	}
	ctx := context.Background()
	in, err := instance.Open(ctx, instance.Options{DataDir: c.dataDir, DatabaseURL: c.databaseURL, Name: c.instanceName, Logger: log})
	if err != nil {
		return fail(e, "init: %v", err)
	}
	defer in.Close()
	if err := bootstrap(ctx, e, in, c); err != nil {
		return fail(e, "bootstrap: %v", err)
	}
	if _, _, err := server.LoadCertificate("", "", c.dataDir, time.Now()); err != nil {
		return failErr(e, err)
	}
	publish(ctx, in)
	fmt.Fprintf(e.stderr, "attest: %s is initialised (instance %s)\n", c.dataDir, in.Name)
	return exitOK
}

// bootstrap creates, the first time serve runs on a database, an operator
// API key, and prints it once. Only its hash is stored.
func bootstrap(ctx context.Context, e *env, in *instance.Instance, c serveConfig) error {
	claimed, err := in.ClaimBootstrap(ctx)
	if err != nil || !claimed {
		return err
	}
	op, err := in.Operator(ctx)
	if err != nil {
		return err
	}
	tok, key, err := in.CreateKey(ctx, op, access.RoleOperator, "bootstrap", time.Time{}, instance.SystemActor(),
		hostDecorate("serve"))
	if err != nil {
		return err
	}
	link, enr, err := in.IssueEnrolment(ctx, op, "", access.RoleOwner, identity.DefaultEnrolmentTTL, instance.SystemActor(),
		hostDecorate("serve"))
	if err != nil {
		return err
	}
	where := c.dataDir
	if c.databaseURL != "" {
		where = "the PostgreSQL database"
	}
	cacert, addr := filepath.Join(c.dataDir, "tls", "cert.pem"), displayAddr(c.addr)
	fmt.Fprintf(e.stdout, `
attest initialised %s.

Bootstrap operator API key, shown this once and stored only as a hash:

    %s

Key id %s. Keep it somewhere safe; create narrower keys with it
(attest apikey create, or POST /api/v1/apikeys) and revoke it when done.

Try, in another shell:
    export KEY=<the key above>
    curl --cacert %s -H "Authorization: Bearer $KEY" https://%s/api/v1/compliance/audit-trail

First owner: this one-time enrolment link creates the owner of the operator
tenant and enrols their second factor. It expires at %s.

    %s

Open it in the web console, which sets the account up step by step:
    https://%s/#enrol/%s

Or use it through the API: set your email, name and password, then add the
TOTP secret it answers to your authenticator app and confirm with a code:
    curl --cacert %s -H 'Content-Type: application/json' https://%s/api/v1/auth/enrol \
         -d '{"token":"<link>","email":"you@example.com","name":"Your Name","password":"<a long passphrase>"}'
    curl --cacert %s -H 'Content-Type: application/json' https://%s/api/v1/auth/enrol/totp \
         -d '{"token":"<link>","code":"<6 digits>"}'
A lost link is replaced with: attest user enrol-link --tenant operator --owner

`, where, tok.Reveal(), key.ID, cacert, addr, enr.ExpiresAt.Format(time.RFC3339), link, addr, link, cacert, addr, cacert, addr)
	return nil
}

// checkCreate validates the flags that shape what init and serve create, so
// that a mistake is reported before any file is made.
func (c *serveConfig) checkCreate() error {
	if c.instanceName != "" {
		if err := instance.ValidateName(c.instanceName); err != nil {
			return fmt.Errorf("--instance-name: %w", err)
		}
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return fmt.Errorf("--addr must be host:port, such as 127.0.0.1:8443: %w", err)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	return nil
}

// checkExisting looks at the store before init or serve creates anything.
// It refuses a store that holds nothing yet next to key files, which belong
// to some other database; and, on a store that is already initialised, a
// data directory without its keys, which would otherwise be replaced by new
// ones, and an --instance-name other than the one it was created with. A
// store whose initialisation never finished is left for init to finish.
func (c *serveConfig) checkExisting(ctx context.Context) error {
	name, err := c.probe(ctx)
	if errors.As(err, new(emptyStoreError)) {
		return c.checkNoKeyFiles()
	}
	if errors.Is(err, instance.ErrNotInitialised) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.checkKeyFiles(); err != nil {
		return err
	}
	if c.instanceName != "" && c.instanceName != name {
		return usagef("--instance-name %q does not match %q, the name this store was created with; "+
			"leave the flag out", c.instanceName, name)
	}
	return nil
}

// tlsKeyFile is the TLS key that serve loads: --tls-key, or the self-signed
// certificate's in the data directory.
func (c *serveConfig) tlsKeyFile() string {
	if c.tlsCert != "" || c.tlsKey != "" {
		return c.tlsKey
	}
	return filepath.Join(c.dataDir, "tls", "key.pem")
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "127.0.0.1" || host == "0.0.0.0" || host == "::" {
		return "localhost:" + port
	}
	return addr
}

// maxBodySize is the largest --max-body: a request body is held in memory
// whole.
const maxBodySize = 1 << 30

// parseSize reads a request body size such as 32MiB, 512KiB, 1GiB or
// 1048576, of at most maxBodySize.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != s {
		return 0, errors.New("must be a positive size such as 32MiB")
	}
	if n > maxBodySize/mult {
		return 0, errors.New("must be at most 1GiB")
	}
	return n * mult, nil
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", p)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", p)
		}
		out = append(out, pf.Masked())
	}
	return out, nil
}

// tuneGC lets the heap grow to three times what is live before a
// collection, unless GOGC says otherwise: ingest allocates per event, and
// collecting half as often saves a few percent of its CPU for a heap that
// stays small. Unless GOMEMLIMIT says otherwise, collections come sooner
// again as the heap nears half the machine's memory, so that a large live
// heap cannot grow the process out of memory.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if total := physicalMemory(); total > 0 {
			debug.SetMemoryLimit(int64(total / 2))
		}
	}
}
