package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Client. URL, APIKey, Source and BufferDir are
// required.
type Config struct {
	// URL is attest's base URL, such as https://attest.internal:8443.
	URL string
	// APIKey is an attest ingest key. Its tenant receives the events.
	APIKey string
	// Tenant names the tenant for an operator key; leave it empty for a
	// tenant's own key.
	Tenant string
	// Source is the service's name, given to events that name none.
	Source string
	// BufferDir holds the events that could not be sent yet. One client
	// uses a directory at a time; a later one sends what it left.
	BufferDir string
	// MaxBufferBytes bounds the events waiting, in memory and on disk
	// together (default 256 MiB). Beyond it Record returns ErrBufferFull.
	MaxBufferBytes int64
	// BatchSize is the most events sent in one request (default 500).
	BatchSize int
	// FlushInterval is how long an event waits for its batch to fill
	// (default 200 ms). A process that crashes loses the events still in
	// memory: those of the last interval, and those recorded while a
	// request to attest was in flight. One that calls Close loses none.
	FlushInterval time.Duration
	// RetryMin and RetryMax bound the wait between attempts while attest
	// is unreachable (defaults 500 ms and 30 s).
	RetryMin, RetryMax time.Duration
	// CAFile is a PEM file of the certificate authorities to trust for
	// attest, such as attest-data/tls/cert.pem; empty trusts the system's.
	CAFile string
	// HTTPClient, when set, is used instead of one built from CAFile.
	HTTPClient *http.Client
	// Timeout bounds one request to attest (default 10 s).
	Timeout time.Duration
	// OnRejected receives each event attest refused, with the field and
	// the reason. Such an event is not retried.
	OnRejected func(event []byte, field, reason string)
	// OnError receives each failure to send; the events stay buffered.
	OnError func(error)
	// Now is the clock for events without a time (default time.Now).
	Now func() time.Time
}

// Stats counts what a client did since it started.
type Stats struct {
	Recorded   int64 // events taken by Record
	Sent       int64 // stored by attest
	Duplicates int64 // already stored, such as a batch sent again after a lost answer
	Rejected   int64 // refused by attest; see Config.OnRejected
	Dropped    int64 // refused by Record because the buffer was full
	Buffered   int64 // events on disk now, waiting for attest
	Pending    int64 // events in memory now, waiting for their batch
	Failures   int64 // requests to attest that failed
}

// ErrBufferFull is returned by Record when the events waiting already fill
// Config.MaxBufferBytes. The event is not kept; Stats counts it.
var ErrBufferFull = errors.New("capture: the buffer is full: attest has been unreachable for long enough to fill it")

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("capture: the client is closed")

// errLost marks a failure that lost events: neither attest nor the buffer
// directory took them.
var errLost = errors.New("capture: events could be neither sent nor buffered")

// maxEventBytes is the longest encoded event attest takes.
const maxEventBytes = 1 << 20

// maxBatchBytes keeps a request well under attest's default body limit.
const maxBatchBytes = 4 << 20

// Client sends audit events to attest. It is safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client
	eventsU string
	// Event ids are a random prefix of the client's and a counter: unique
	// without a random read per event.
	idPrefix string
	ids      atomic.Uint64

	mu           sync.Mutex
	pending      [][]byte
	pendingBytes int64
	spoolBytes   int64 // the spool's size, as the sender last set it
	closed       bool
	stats        Stats

	// sendMu serialises the flusher and Flush, which own the spool.
	sendMu    sync.Mutex
	spool     *spool
	nextRetry time.Time
	backoff   time.Duration

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// New starts a client. Events an earlier client left in Config.BufferDir
// are sent first.
func New(cfg Config) (*Client, error) {
	for _, r := range []struct{ name, v string }{{"URL", cfg.URL}, {"APIKey", cfg.APIKey}, {"Source", cfg.Source},
		{"BufferDir", cfg.BufferDir}} {
		if r.v == "" {
			return nil, fmt.Errorf("capture: Config.%s is required", r.name)
		}
	}
	if !strings.HasPrefix(cfg.URL, "https://") {
		return nil, errors.New("capture: Config.URL must be an https:// URL: attest serves TLS only")
	}
	if cfg.MaxBufferBytes <= 0 {
		cfg.MaxBufferBytes = 256 << 20
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 500 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(30*time.Second, cfg.RetryMin)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS13}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("capture: Config.CAFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("capture: Config.CAFile: %s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	}
	sp, err := openSpool(cfg.BufferDir)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, http: hc, eventsU: strings.TrimSuffix(cfg.URL, "/") + "/api/v1/audit/events", spool: sp,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	prefix := make([]byte, 15)
	rand.Read(prefix)
	c.idPrefix = "cap-" + strings.ToLower(base32.StdEncoding.EncodeToString(prefix)) + "-"
	c.stats.Buffered, c.spoolBytes = int64(sp.events()), sp.bytes
	go c.run()
	return c, nil
}

// Record queues ev for attest. It returns ErrBufferFull, and counts the
// event as dropped, when the events waiting fill the buffer; it never
// waits for attest.
func (c *Client) Record(ev Event) error {
	if ev.ID == "" {
		ev.ID = c.idPrefix + strconv.FormatUint(c.ids.Add(1), 10)
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = c.cfg.Now()
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	if ev.Source == "" {
		ev.Source = c.cfg.Source
	}
	line, err := appendJSON(make([]byte, 0, 512), &ev)
	if err != nil {
		return err
	}
	if len(line) > maxEventBytes {
		return fmt.Errorf("capture: the event is %d bytes encoded; attest takes at most %d", len(line), maxEventBytes)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.pendingBytes+c.spoolBytes+int64(len(line)) > c.cfg.MaxBufferBytes {
		c.stats.Dropped++
		return ErrBufferFull
	}
	c.pending = append(c.pending, line)
	c.pendingBytes += int64(len(line)) + 1
	c.stats.Recorded++
	if len(c.pending) >= c.cfg.BatchSize {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Pending = int64(len(c.pending))
	return s
}

func (c *Client) run() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.kick:
		}
		c.sendMu.Lock()
		c.cycle(context.Background(), false)
		c.sendMu.Unlock()
	}
}

// cycle sends the buffered batches, oldest first, then what is pending. A
// batch that cannot be sent goes to disk. Unless force, nothing is tried
// before the retry time once attest has failed.
func (c *Client) cycle(ctx context.Context, force bool) error {
	var err error
	for {
		if !force && time.Now().Before(c.nextRetry) {
			break
		}
		f, b, rerr := c.spool.oldest()
		if rerr != nil {
			err = rerr
			c.report(rerr)
			break
		}
		if f == nil {
			break
		}
		if err = c.send(ctx, b); err != nil {
			break
		}
		if err = c.spool.remove(); err != nil {
			break
		}
		c.noteSpool(-int64(f.events))
	}
	for {
		c.mu.Lock()
		lines := c.takeBatchLocked()
		c.mu.Unlock()
		if len(lines) == 0 {
			return err
		}
		if err == nil && len(c.spool.files) == 0 && (force || !time.Now().Before(c.nextRetry)) {
			if err = c.send(ctx, joinLines(lines)); err == nil {
				continue
			}
		}
		// attest is unreachable, or older events wait before these.
		if serr := c.spool.add(lines); serr != nil {
			// The disk refused them too: they are lost, and said so.
			c.mu.Lock()
			c.stats.Dropped += int64(len(lines))
			c.mu.Unlock()
			lost := fmt.Errorf("%w: %d events lost: %w", errLost, len(lines), serr)
			c.report(lost)
			return lost
		}
		c.noteSpool(int64(len(lines)))
	}
}

// takeBatchLocked removes up to one batch from pending.
func (c *Client) takeBatchLocked() [][]byte {
	n, size := 0, 0
	for n < len(c.pending) && n < c.cfg.BatchSize && size+len(c.pending[n]) < maxBatchBytes {
		size += len(c.pending[n]) + 1
		n++
	}
	lines := c.pending[:n:n]
	c.pending = c.pending[n:]
	c.pendingBytes -= int64(size)
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return lines
}

func (c *Client) noteSpool(events int64) {
	c.mu.Lock()
	c.stats.Buffered += events
	c.spoolBytes = c.spool.bytes
	c.mu.Unlock()
}

func joinLines(lines [][]byte) []byte {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b := make([]byte, 0, n)
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	return b
}

// ingestAnswer is attest's answer to a batch.
type ingestAnswer struct {
	Accepted, Duplicate, Rejected int
	Results                       []struct {
		Index  int
		Status string
		Error  *struct{ Field, Reason string }
	}
}

// send posts one batch. An error means attest did not take it, and it must
// be sent again; events attest refused are reported, not retried.
func (c *Client) send(ctx context.Context, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.eventsU, bytes.NewReader(body))
	if err != nil {
		return c.failed(fmt.Errorf("capture: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	if c.cfg.Tenant != "" {
		req.Header.Set("Attest-Tenant", c.cfg.Tenant)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.failed(fmt.Errorf("capture: send to attest: %w", err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return c.failed(fmt.Errorf("capture: read attest's answer: %w", err))
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	var ans ingestAnswer
	switch {
	case (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusBadRequest) && json.Unmarshal(b, &ans) == nil &&
		ans.Results != nil:
	case resp.StatusCode == http.StatusRequestEntityTooLarge && len(lines) > 1:
		// Too large for this attest: each half is sent on its own.
		half := 0
		for _, l := range lines[:len(lines)/2] {
			half += len(l) + 1
		}
		if err := c.send(ctx, body[:half]); err != nil {
			return err
		}
		return c.send(ctx, body[half:])
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge ||
		resp.StatusCode == http.StatusUnsupportedMediaType:
		// attest refused the batch as a whole, and would refuse it again:
		// its events are reported rather than retried for ever.
		var p struct{ Detail string }
		json.Unmarshal(b, &p)
		for _, l := range lines {
			if c.cfg.OnRejected != nil {
				c.cfg.OnRejected(l, "batch", fmt.Sprintf("attest refused the whole batch (%s): %s", resp.Status, p.Detail))
			}
		}
		c.mu.Lock()
		c.stats.Rejected += int64(len(lines))
		c.mu.Unlock()
		return nil
	default:
		return c.failed(fmt.Errorf("capture: attest answered %s: %.300s", resp.Status, b))
	}
	for _, r := range ans.Results {
		if r.Status == "rejected" && r.Error != nil && c.cfg.OnRejected != nil && r.Index >= 0 && r.Index < len(lines) {
			c.cfg.OnRejected(lines[r.Index], r.Error.Field, r.Error.Reason)
		}
	}
	c.mu.Lock()
	c.stats.Sent += int64(ans.Accepted)
	c.stats.Duplicates += int64(ans.Duplicate)
	c.stats.Rejected += int64(ans.Rejected)
	c.mu.Unlock()
	c.backoff = 0
	c.nextRetry = time.Time{}
	return nil
}

// failed notes a failed request and sets when to try again.
func (c *Client) failed(err error) error {
	c.mu.Lock()
	c.stats.Failures++
	c.mu.Unlock()
	c.backoff = min(max(2*c.backoff, c.cfg.RetryMin), c.cfg.RetryMax)
	c.nextRetry = time.Now().Add(c.backoff)
	c.report(err)
	return err
}

func (c *Client) report(err error) {
	if c.cfg.OnError != nil {
		c.cfg.OnError(err)
	}
}

// Flush sends every event waiting, on disk and in memory, trying attest
// once even when a retry is not due. It returns an error when attest could
// not take them all; those stay buffered on disk.
func (c *Client) Flush(ctx context.Context) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.cycle(ctx, true)
}

// Close stops the client. It sends what waits in memory, or writes it to
// the buffer directory when attest is unreachable, so that nothing
// recorded is lost; a later client on the same directory sends it.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	// Whatever attest does not take now is buffered on disk, not lost.
	if err := c.cycle(context.Background(), true); errors.Is(err, errLost) {
		return err
	}
	return nil
}
