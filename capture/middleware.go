package capture

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/attest/attest/internal/event"
)

// Options shape the events Middleware records. Every function is optional.
type Options struct {
	// Actor says who made the request, from the service's own
	// authentication. The default is an anonymous actor; either way the
	// client IP and user agent are filled in when the actor has none.
	Actor func(r *http.Request) Actor
	// Action names the action, such as transcript.read. The default is
	// http.<method>, such as http.get.
	Action func(r *http.Request) string
	// Target says what the request acted on. The default is the route
	// pattern the request matched (type http_route), or its path.
	Target func(r *http.Request) *Target
	// Category is the event's category. The default is data_access for
	// GET, HEAD and OPTIONS and data_change for every other method.
	Category func(r *http.Request) string
	// RequestIDHeader names the header carrying a request id (default
	// X-Request-Id).
	RequestIDHeader string
	// OnError receives an event Record refused, such as when the buffer
	// is full. The request itself is answered as the handler answers it.
	OnError func(r *http.Request, err error)
}

// Middleware records every request handled by next as an event in c. It
// reads the request after next has run, so that a route pattern set by an
// http.ServeMux inside next is known, and the status is the one next sent.
// The client IP is the connection's peer: behind a proxy, set Actor.IP in
// Options.Actor from the header the proxy sets.
func Middleware(c *Client, o Options) func(http.Handler) http.Handler {
	if o.RequestIDHeader == "" {
		o.RequestIDHeader = "X-Request-Id"
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			record := func(status int) {
				if err := c.Record(requestEvent(r, status, start, &o)); err != nil && o.OnError != nil {
					o.OnError(r, err)
				}
			}
			defer func() {
				// A handler that panics is recorded as an error, and the
				// panic goes on to the server.
				if p := recover(); p != nil {
					record(http.StatusInternalServerError)
					panic(p)
				}
			}()
			next.ServeHTTP(sw, r)
			record(sw.status())
		})
	}
}

func requestEvent(r *http.Request, status int, start time.Time, o *Options) Event {
	ev := Event{OccurredAt: start}
	if o.Actor != nil {
		ev.Actor = o.Actor(r)
	}
	if ev.Actor.Type == "" {
		ev.Actor.Type = "anonymous"
	}
	if ev.Actor.IP == "" {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			host, _, _ = strings.Cut(host, "%")
			ev.Actor.IP = event.CleanText(host, event.MaxActorIP)
		}
	}
	if ev.Actor.UserAgent == "" {
		ev.Actor.UserAgent = event.CleanText(r.UserAgent(), event.MaxUserAgent)
	}
	if o.Action != nil {
		ev.Action = o.Action(r)
	} else {
		ev.Action = "http." + methodName(r.Method)
	}
	switch {
	case o.Category != nil:
		ev.Category = o.Category(r)
	case r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions:
		ev.Category = "data_access"
	default:
		ev.Category = "data_change"
	}
	if o.Target != nil {
		ev.Target = o.Target(r)
	} else if r.Pattern != "" {
		ev.Target = &Target{Type: "http_route", ID: event.CleanText(r.Pattern, event.MaxTargetID)}
	} else {
		ev.Target = &Target{Type: "http_route", ID: event.CleanText(r.URL.Path, event.MaxTargetID)}
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		ev.Outcome.Result = "denied"
	case status >= 500:
		ev.Outcome.Result = "error"
	case status >= 400:
		ev.Outcome.Result = "failure"
	default:
		ev.Outcome.Result = "success"
	}
	// What the client sent is made to fit attest's schema, so that no
	// request goes unrecorded for a long path or a control character.
	ev.Request = &Request{ID: event.CleanText(r.Header.Get(o.RequestIDHeader), event.MaxRequestID),
		Method: methodToken(r.Method), Path: event.CleanText(r.URL.Path, event.MaxPath),
		DurationMs: float64(time.Since(start).Microseconds()) / 1000}
	if status >= 100 && status <= 599 {
		ev.Request.Status = status
	}
	return ev
}

// methodName is the method for an action name: lower case when it is a
// plain word of letters, as every standard method is, and "other" for any
// other token a client may send, which an action could not hold. The
// request's method keeps what was sent.
func methodName(m string) string {
	if len(m) == 0 || len(m) > event.MaxMethod {
		return "other"
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "other"
		}
	}
	return strings.ToLower(m)
}

// methodToken is the method as the request's method, when attest's schema
// can hold it: letters, digits, - and _, at most MaxMethod bytes. Any other
// is left out, and the action says http.other.
func methodToken(m string) string {
	if len(m) > event.MaxMethod {
		return ""
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return m
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush and Hijack pass through, so that streaming and upgraded handlers
// work behind the middleware as they would without it.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
