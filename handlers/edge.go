package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// This file holds what every request meets at the edge, whatever it asks
// for: a write deadline, telling a client that left from a server fault,
// reading a request body, and knowing whether the browser reached us over
// TLS.

// writeDeadline gives every response of the routes it wraps a write
// deadline of d, counted from when the response starts (its WriteHeader or
// first Write) rather than from when the request arrived, so a POST body
// that took a while to arrive still gets all of d to be answered. A client
// that does not read is cut off once d has passed: its connection, buffers
// and goroutines are freed instead of held until it leaves. Streams keep
// their own per-write deadlines and are not wrapped.
//
// Nothing is armed before the response starts: over HTTP/2 a write
// deadline that passes resets the stream, and would cut a slow upload that
// -read-timeout still allows. Until then the server's WriteTimeout (set by
// cmd/hxchat to cover the read timeout too) is the bound.
func writeDeadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}, r)
		})
	}
}

// deadlineWriter arms the write deadline when the response starts.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	d       time.Duration
	started bool
}

func (w *deadlineWriter) start() {
	if !w.started {
		w.started = true
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	}
}

func (w *deadlineWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx informational responses do not start the response
		w.start()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() { _ = w.rc.Flush() }

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientLeft reports whether r's client went away: net/http cancels a
// request's context when its connection closes (or a read from it fails).
// What fails after that is not a server fault: it is logged at Debug and
// counted in hxchat_requests_cancelled_total, never as a store error.
func clientLeft(r *http.Request) bool {
	return errors.Is(r.Context().Err(), context.Canceled)
}

// logFailure logs a failed step of serving r at level, or at Debug when the
// failure is only that r's client left.
func logFailure(logger *slog.Logger, r *http.Request, level slog.Level, msg string, attrs ...slog.Attr) {
	if clientLeft(r) {
		level = slog.LevelDebug
		attrs = append(attrs, slog.Bool("client_left", true))
	}
	logger.LogAttrs(r.Context(), level, msg, attrs...)
}

// countCancelled counts the requests of the routes it wraps whose client
// left before they were answered, by route pattern (a bounded set, unlike
// paths, which hold room names).
func countCancelled(m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if clientLeft(r) {
				route := "other"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				m.Cancelled.WithLabelValues(route).Inc()
			}
		})
	}
}

// parseForm reads r's form body, at most maxBody bytes of it. The error, if
// any, is for bodyProblem.
func parseForm(w http.ResponseWriter, r *http.Request, maxBody int64) error {
	if r.ContentLength > maxBody {
		// Refused before a byte is read: a client that sent
		// "Expect: 100-continue" is not invited to send the body.
		return &http.MaxBytesError{Limit: maxBody}
	}
	body := &readTracker{ReadCloser: http.MaxBytesReader(w, r.Body, maxBody)}
	r.Body = body
	if err := r.ParseForm(); err != nil {
		if body.err != nil {
			return &bodyReadError{err: body.err}
		}
		return err
	}
	return nil
}

// readTracker remembers the error that reading a body met, so a body that
// could not be read is told apart from one that was read but malformed.
type readTracker struct {
	io.ReadCloser
	err error
}

func (b *readTracker) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// bodyReadError is a request body that could not be read to its end.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read the request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// bodyProblem says why parseForm failed, as the status to answer, the
// reason to show (tooLarge for a 413) and the rejection metric's reason:
// too large (413), too
// slow (408: the server's -read-timeout passed), cut short (400: the
// connection ended mid-body) or malformed (400).
func bodyProblem(err error, tooLarge string) (status int, reason, metric string) {
	var tooBig *http.MaxBytesError
	var readErr *bodyReadError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, tooLarge, "too_large"
	case errors.As(err, &readErr) && errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout, "The form took too long to arrive; nothing was sent. Please try again.", "body_timeout"
	case errors.As(err, &readErr):
		return http.StatusBadRequest, "The form arrived incomplete; nothing was sent. Please try again.", "body_cut"
	default:
		return http.StatusBadRequest, "The form could not be read.", "bad_form"
	}
}

// secureRequest reports whether the browser reached us over TLS: directly,
// or through a trusted proxy (-trusted-proxies) that says so with
// X-Forwarded-Proto: https or Forwarded: proto=https. A header from any
// other peer is ignored: anyone can send it.
func secureRequest(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	if len(trusted) == 0 {
		return false
	}
	peer, ok := parseHost(r.RemoteAddr)
	if !ok || !TrustedAddr(peer, trusted) {
		return false
	}
	// The proxy nearest to us appended last; a value it did not write
	// (from the client, to the left) means nothing.
	if v := lastListValue(r.Header.Values("X-Forwarded-Proto")); v != "" {
		return strings.EqualFold(v, "https")
	}
	for _, el := range strings.Split(lastListValue(r.Header.Values("Forwarded")), ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(el), "=")
		if ok && strings.EqualFold(k, "proto") {
			return strings.EqualFold(strings.Trim(v, `"`), "https")
		}
	}
	return false
}

// lastListValue returns the last element of a comma-separated header that
// may appear more than once.
func lastListValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// hstsValue is the Strict-Transport-Security header for maxAge, or "" for
// none.
func hstsValue(maxAge time.Duration) string {
	if maxAge <= 0 {
		return ""
	}
	return "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
}

// acceptEncoding rewrites Accept-Encoding to the plain names of the codings
// the client accepts (RFC 9110 12.5.3: "q=0" means not acceptable), for
// chi's Compress, which only looks for the names as substrings, so that
// "gzip;q=0" or "xgzip" would get gzip. Unknown names are dropped.
func acceptEncoding(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values("Accept-Encoding")
		if len(values) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		var accepted []string
		for _, v := range values {
			for _, el := range strings.Split(v, ",") {
				name, params, _ := strings.Cut(el, ";")
				name = strings.ToLower(strings.TrimSpace(name))
				if !knownCodings[name] || !acceptable(params) {
					continue
				}
				accepted = append(accepted, name)
			}
		}
		r.Header.Del("Accept-Encoding")
		if len(accepted) > 0 {
			r.Header.Set("Accept-Encoding", strings.Join(accepted, ", "))
		}
		next.ServeHTTP(w, r)
	})
}

// knownCodings are the content codings acceptEncoding passes on; others
// (and "*", which would ask for whatever the server likes) are dropped.
var knownCodings = map[string]bool{"gzip": true, "deflate": true, "br": true, "zstd": true, "identity": true}

// acceptable reports whether a coding's parameters leave it acceptable: no
// q, or a q above zero ("q=0", "q=0.0", "q=0.000" are refusals; so is a q
// that is not a number).
func acceptable(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil && q > 0
	}
	return true
}

// sameSiteStreams refuses a stream that another site's page opens (the
// browser says so in Sec-Fetch-Site): it would make the page's visitors
// show up in rooms as guests and hold stream slots they never see. Our own
// pages, a typed URL and clients that send no Sec-Fetch-Site (tools, older
// browsers) pass.
func sameSiteStreams(m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
				m.rejected("cross_site_stream")
				renderError(w, r, http.StatusForbidden, "Forbidden", "Another site's page may not open this chat's streams.")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
