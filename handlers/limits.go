package handlers

// Per-client limits: who the client is (clientAddr), how fast it may post
// (postLimiter, a token bucket per address) and how many streams it and
// everyone together may hold open (streamLimiter). Both keep per-address
// state in maps with a hard bound, so a crowd of addresses (an IPv6 host has
// billions) costs bounded memory, and a refused client is answered at once:
// nothing here ever waits, so a limited client never delays anyone else.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ParseTrustedProxies parses the -trusted-proxies value: a comma-separated
// list of CIDR prefixes ("10.0.0.0/8", "fd00::/8") and single addresses
// ("127.0.0.1", "::1"), spaces allowed around each. An empty string trusts
// no proxy. IPv4-mapped IPv6 forms are stored as IPv4, as clientAddr
// compares addresses.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := parsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.WithZone("").Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("an IPv4-mapped prefix needs at least 96 bits")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// parseHost parses an address as it appears in RemoteAddr or
// X-Forwarded-For: "1.2.3.4", "1.2.3.4:80", "::1", "[::1]" or "[::1]:80".
// The zone is dropped and an IPv4-mapped address becomes IPv4, so one
// client has one key.
func parseHost(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		switch {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	return a.WithZone("").Unmap(), true
}

// TrustedAddr reports whether a is one of the trusted proxies (a full
// address, never a ClientKey).
func TrustedAddr(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address the limits count a request against: the peer
// (r.RemoteAddr), unless the peer is a trusted proxy. Then X-Forwarded-For
// is read from the right (the entry the trusted peer appended) leftwards,
// skipping trusted proxies, and the first untrusted address is the client;
// entries further left were written by that client and may be forged. A
// malformed entry stops the walk at the last address known to be good. A
// peer that cannot be parsed is the zero Addr (all such requests share one
// key). An IPv6 client is its /64 (see perClient).
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseHost(r.RemoteAddr)
	if !ok || !TrustedAddr(peer, trusted) {
		return ClientKey(peer)
	}
	// Several X-Forwarded-For headers form one list, in order.
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHost(strings.TrimSpace(hops[i]))
		if !ok {
			break
		}
		client = a
		if !TrustedAddr(a, trusted) {
			break
		}
	}
	return ClientKey(client)
}

// ClientKey is the key of a client address: an IPv4 address itself, an
// IPv6 address its /64. A host (or a home network) is given a whole /64 and
// may use any address in it, so counting per address would give it a fresh
// allowance with each. Trust is decided on full addresses, before this.
// Every per-client limit counts by it: posts, streams, and (cmd/hxchat)
// connections.
func ClientKey(a netip.Addr) netip.Addr {
	if !a.Is6() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// clientKey is the context key of the client address (withClient).
type clientKey struct{}

// withClient decides, once per request, the address the per-client limits
// count it against (clientAddr, with the one list of trusted proxies) and
// puts it in the request context for clientOf.
func withClient(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := context.WithValue(r.Context(), clientKey{}, clientAddr(r, trusted))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// clientOf returns the client address withClient decided for r; without
// it, the peer's.
func clientOf(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(clientKey{}).(netip.Addr); ok {
		return a
	}
	return clientAddr(r, nil)
}

// retryAfter formats d for a Retry-After header: whole seconds, rounded up,
// at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// Bounds of the per-address maps. At about 150 bytes an entry, a full map
// of post buckets is some 15 MB.
const (
	// maxPostClients bounds the post buckets kept at once.
	maxPostClients = 100_000
	// sweepEvery is how often idle post buckets are dropped.
	sweepEvery = time.Minute
)

// tooFast is what a client over the post rate is told.
const tooFast = "You are sending messages too fast; wait a moment and send again."

// postLimiter is a token bucket per client address: rate tokens a second,
// up to burst. A nil *postLimiter allows everything.
//
// The map is bounded by max. A bucket that has filled up again carries no
// state (a new one would be the same), so such buckets are dropped by a
// sweep every sweepEvery. A new address in a full map replaces a full
// bucket if a small random sample has one, else a busy one: that client
// gets a fresh burst, the price of bounded memory under a flood of more
// than max addresses; refusing new addresses instead would let the flood
// lock everyone else out.
type postLimiter struct {
	limit rate.Limit
	burst int
	max   int
	now   func() time.Time // time.Now; tests move it

	mu        sync.Mutex
	buckets   map[netip.Addr]*rate.Limiter
	lastSweep time.Time
}

// newPostLimiter returns a limiter of perSecond posts a second up to burst
// in a row, or nil (no limit) when perSecond is 0 or less.
func newPostLimiter(perSecond float64, burst int) *postLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &postLimiter{
		limit:   rate.Limit(perSecond),
		burst:   max(1, burst), // a burst of 0 would refuse every post
		max:     maxPostClients,
		now:     time.Now,
		buckets: make(map[netip.Addr]*rate.Limiter),
	}
}

// allow takes a token from addr's bucket. When there is none it returns
// false and how long until there is; it never waits.
func (l *postLimiter) allow(addr netip.Addr) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evictOne(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[addr] = b
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now) // a refused post costs no token
		return false, d
	}
	return true, 0
}

// evictSample is how many buckets evictOne looks at for an idle one.
const evictSample = 8

// evictOne makes room for a bucket: the first full one among a few (map
// order is random), else the last looked at. It costs O(evictSample), not
// a sweep, so a flood of new addresses stays cheap. The caller holds l.mu.
func (l *postLimiter) evictOne(now time.Time) {
	var victim netip.Addr
	n := 0
	for k, b := range l.buckets {
		victim = k
		if n++; n == evictSample || b.TokensAt(now) >= float64(l.burst) {
			break
		}
	}
	delete(l.buckets, victim)
}

// sweep drops every bucket that is full again. The caller holds l.mu.
func (l *postLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// size is the number of buckets held.
func (l *postLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// refusePost answers a post over the rate limit with 429, Retry-After and
// the reason next to the form. The body is read (within maxBody) only to
// keep the refused text in the form, so the sender can send it again.
func refusePost(w http.ResponseWriter, r *http.Request, m *Metrics, wait time.Duration, maxBody int64, fail func(status int, reason, text string)) {
	m.rejected("rate")
	w.Header().Set("Retry-After", retryAfter(wait))
	var text string
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err == nil {
		text = r.PostForm.Get("message")
	}
	fail(http.StatusTooManyRequests, tooFast, text)
}

// streamLimiter counts open streams per client address and in total. A
// zero limit is no limit. Its map holds only addresses with an open
// stream, so it is bounded by the number of open streams.
type streamLimiter struct {
	perClient, total int

	mu      sync.Mutex
	open    int
	clients map[netip.Addr]int
}

func newStreamLimiter(perClient, total int) *streamLimiter {
	return &streamLimiter{perClient: perClient, total: total, clients: make(map[netip.Addr]int)}
}

// Acquire takes a stream slot for addr. If one is free it returns ok and a
// release func (safe to call more than once) that frees the slot; otherwise
// which limit refused it: "streams_per_client" or "streams_total". It never
// waits.
func (l *streamLimiter) Acquire(addr netip.Addr) (release func(), ok bool, which string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.open >= l.total {
		return nil, false, "streams_total"
	}
	if l.perClient > 0 && l.clients[addr] >= l.perClient {
		return nil, false, "streams_per_client"
	}
	l.open++
	l.clients[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.open--
			if l.clients[addr]--; l.clients[addr] <= 0 {
				delete(l.clients, addr)
			}
		})
	}, true, ""
}

// admit takes a stream slot for r's client, or refuses the stream
// (refuseStream: a short event stream with Retry-After, a retry: and the
// reason, which htmx keeps retrying, unlike a 503). On ok the caller must
// call release when the stream ends.
func (s *Streams) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	release, ok, which := s.limits.Acquire(clientOf(r))
	if ok {
		return release, true
	}
	s.metrics.rejected(which)
	refuseStream(w, s.cfg.Retry, limitReason(which))
	return nil, false
}

// limitReason is what a person is told when a stream limit refuses their
// stream or live log (which limit: Acquire's which).
func limitReason(which string) string {
	if which == "streams_total" {
		return "the server has too many open streams; try again shortly"
	}
	return "too many open streams from your address; close some tabs"
}
