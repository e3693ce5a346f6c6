// Package handlers is hxchat's HTTP layer: the chi router, the pages, the
// message POST, the SSE endpoint, middleware and the one place that maps
// errors to status codes.
package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hxchat/hxchat/views"
)

// Config holds the HTTP layer's limits.
type Config struct {
	// History is how many recent messages a room page shows.
	History int
	// MaxBody bounds a POST body in bytes.
	MaxBody int64
	// PostRate is how many posts a second one client address may make on
	// average (0: no limit), PostBurst how many in a row; more get 429.
	PostRate  float64
	PostBurst int
	// Trusted are the proxies whose X-Forwarded-For names the client, for
	// the per-client limits of posts and streams, and whose
	// X-Forwarded-Proto: https makes cookies Secure.
	Trusted []netip.Prefix
	// WriteTimeout bounds writing any response but a stream (which has its
	// own per-write deadlines), from when it starts: a client that does
	// not read is cut off. 0: no bound.
	WriteTimeout time.Duration
	// AdminToken is the operators' token (at least MinAdminTokenLen
	// characters): who signs in with it may delete any message. Empty: no
	// operators.
	AdminToken string
	// HSTS is the max-age of the Strict-Transport-Security header sent on
	// responses that reached us over TLS (directly or through a trusted
	// proxy). 0: not sent.
	HSTS time.Duration
}

// Deps are what the HTTP layer talks to.
type Deps struct {
	Logger   *slog.Logger
	Hub      Hub
	Streams  *Streams
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	Config   Config
	// Health, if set, is pinged by /healthz (the Redis store).
	Health Pinger
	// Draining, if set, reports that the server is shutting down; /healthz
	// then answers 503 so load balancers stop sending clients here.
	Draining func() bool
	// Secret signs identity cookies (at least MinSecretLen bytes). Every
	// node serving the same people must have the same one.
	Secret []byte
}

// MinSecretLen is the shortest Deps.Secret NewServer accepts.
const MinSecretLen = 16

// NewServer returns the handler serving every hxchat URL. It panics when
// d.Secret is shorter than MinSecretLen.
func NewServer(d Deps) http.Handler {
	if len(d.Secret) < MinSecretLen {
		panic(fmt.Sprintf("handlers: Deps.Secret is %d bytes long, want at least %d", len(d.Secret), MinSecretLen))
	}
	if t := d.Config.AdminToken; t != "" && len(t) < MinAdminTokenLen {
		panic(fmt.Sprintf("handlers: Config.AdminToken is %d bytes long, want at least %d", len(t), MinAdminTokenLen))
	}
	r := chi.NewRouter()
	r.Use(recoverer(d.Logger), requestLog(d.Logger), middleware.GetHead)
	addRoutes(r, d)
	// CrossOriginProtection rejects cross-site unsafe requests (CSRF) with
	// 403 before they reach any handler.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.Metrics.rejected("csrf")
		renderError(w, r, http.StatusForbidden, "Forbidden", "This request came from another site and was refused (cross-origin request protection).")
	}))
	// securityHeaders goes outside, so the 403 page has them too.
	return securityHeaders(d.Config.Trusted, d.Config.HSTS)(cop.Handler(r))
}

// compressible lists the content types compressed for clients that accept
// it. Never text/event-stream: a compressor buffers, and a stream must
// reach the browser event by event.
var compressible = []string{"text/html", "text/css", "text/javascript", "application/javascript", "image/svg+xml", "text/plain"}

// addRoutes lists every URL hxchat serves.
func addRoutes(r chi.Router, d Deps) {
	// Pages, posts and streams know who asks (PersonFrom); static files,
	// health and metrics do not, and set no cookie.
	id := identify(d.Secret, d.Config.Trusted)
	// Operators: who they are is known where it matters.
	ops := newOperators(d.Secret, d.Config.AdminToken)
	op := withOperator(ops)
	// Posts and streams have per-client limits. Deletions share the post
	// rate: each stores a record.
	client := withClient(d.Config.Trusted)
	writes := newPostLimiter(d.Config.PostRate, d.Config.PostBurst)
	// The stream stays outside every buffering or timeout middleware.
	r.With(sameSiteStreams(d.Metrics), id, client).Method(http.MethodGet, "/chat/{room}/events", d.Streams)
	// The live log is a stream too: admitted like one, never compressed.
	r.With(sameSiteStreams(d.Metrics), id, client).Get("/chat/{room}/log", handleLiveLog(d.Logger, d.Hub, d.Streams, d.Config.History))
	r.Group(func(r chi.Router) {
		// Everything but the stream: a write deadline on every response,
		// clients that left counted apart, and compression.
		r.Use(writeDeadline(d.Config.WriteTimeout), countCancelled(d.Metrics), acceptEncoding, middleware.Compress(5, compressible...))
		r.With(id).Get("/", handleIndex(d.Logger, d.Hub))
		r.With(id).Get("/chat/", handleRoomQuery(d.Logger, d.Hub, d.Metrics))
		r.Get(views.RoomsURL, handleRooms(d.Logger, d.Hub))
		r.With(id).Get("/chat/{room}/", handleRoom(d.Logger, d.Hub, d.Config.History))
		r.With(id, client, observe(d.Metrics.PostDuration)).Post("/chat/{room}/messages", handlePost(d.Logger, d.Hub, d.Metrics, d.Config, writes))
		r.With(id, op, client).Post("/chat/{room}/messages/{seq}/delete", handleDelete(d.Logger, d.Hub, d.Metrics, writes))
		r.With(id).Post(views.NameURL, handleName(d.Logger, d.Hub, d.Metrics, d.Config, d.Secret))
		r.With(id, op).Get("/me.css", handleMeCSS())
		r.With(id, op).Get(views.AdminURL, handleAdmin(ops))
		r.With(id, client).Post(views.AdminLoginURL, handleAdminLogin(d.Logger, ops, d.Metrics, d.Config))
		r.With(id, op).Post(views.AdminLogoutURL, handleAdminLogout(d.Logger, ops))
		r.Get("/static/*", handleStatic())
		r.Get("/favicon.ico", handleFavicon())
		r.Get("/healthz", handleHealth(d.Logger, d.Health, d.Draining))
		r.Get("/metrics", promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{}).ServeHTTP)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		renderError(w, r, http.StatusNotFound, "Not found", "There is no page at this address.")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 15.5.6: a 405 must list the allowed methods. chi only
		// sets Allow in its default handler, not in a custom one.
		if allow := allowedMethods(r, req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		renderError(w, req, http.StatusMethodNotAllowed, "Method not allowed", req.Method+" is not allowed here.")
	})
}

// allowedMethods lists the methods routes serves at req's path, for the
// Allow header of a 405. HEAD is served wherever GET is (middleware.GetHead).
func allowedMethods(routes chi.Routes, req *http.Request) string {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	return strings.Join(allow, ", ")
}
