package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// contentSecurityPolicy allows only this origin's scripts and styles, and no
// inline script or style at all. Pages may be framed by this origin only:
// the room page frames its own log when JavaScript is off.
const contentSecurityPolicy = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'; object-src 'none'"

// securityHeaders sets the headers every response carries, and
// Strict-Transport-Security (max-age hsts, unless 0) on those that reached
// us over TLS, directly or through a trusted proxy: over plain HTTP it
// would be ignored, and a man in the middle could strip it anyway.
func securityHeaders(trusted []netip.Prefix, hsts time.Duration) func(http.Handler) http.Handler {
	sts := hstsValue(hsts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "same-origin")
			h.Set("X-Frame-Options", "SAMEORIGIN") // frame-ancestors for browsers without CSP 2
			if sts != "" && secureRequest(r, trusted) {
				h.Set("Strict-Transport-Security", sts)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// observe records each request's duration in h.
func observe(h prometheus.Observer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			next.ServeHTTP(w, r)
			h.Observe(time.Since(start).Seconds())
		})
	}
}

// recoverer turns a panic into a logged 500 so no panic reaches a client.
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v) // net/http's own signal to abort the response
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic", slog.String("path", r.URL.Path), slog.String("panic", fmt.Sprint(v)))
				renderError(w, r, http.StatusInternalServerError, "Internal error", "Something went wrong on our side.")
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// statusWriter records the status for the request log. It forwards Flush
// and Unwrap so streaming and http.ResponseController keep working.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// noteStatus records status in the statusWriter under w's wrappers, if
// any: a taken-over stream writes its own head, past the wrappers.
func noteStatus(w http.ResponseWriter, status int) {
	for {
		if s, ok := w.(*statusWriter); ok && s.status == 0 {
			s.status = status
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// requestLog logs each request at debug level: method, path, status and
// duration. It never logs bodies, so message text stays out of the logs.
func requestLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !logger.Enabled(r.Context(), slog.LevelDebug) {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			logger.LogAttrs(r.Context(), slog.LevelDebug, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status), slog.Duration("took", time.Since(start)))
		})
	}
}
