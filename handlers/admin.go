package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hxchat/hxchat/views"
)

// MinAdminTokenLen is the shortest admin token NewServer accepts.
const MinAdminTokenLen = 16

// Operator sessions. An operator signs in with the server's admin token
// and gets a cookie of their own, next to the identity cookie:
//
//	hxchat_op = expiry "." base64url(mac)
//	mac       = HMAC-SHA256(secret, "hxchat/op/v1\x00" personID "\x00" expiry "\x00" SHA-256(token))
//
// It is bound to the person's id, so it is worth nothing without their
// identity cookie, and to the token, so changing -admin-token signs every
// operator out. Over TLS it is __Host-hxchat_op and Secure, like the
// identity cookie.
const (
	opCookieName       = "hxchat_op"
	secureOpCookieName = "__Host-" + opCookieName
	// opSessionLen is how long an operator stays signed in.
	opSessionLen = 12 * time.Hour
	// Sign-in attempts per client address: a burst of loginBurst, then
	// one per loginEvery. A 16-character token of letters and digits is
	// 95 bits: guessing at this rate is hopeless.
	loginEvery = 10 * time.Second
	loginBurst = 5
)

// operators decides who is an operator. The zero value (no token) has
// none.
type operators struct {
	secret []byte
	token  [sha256.Size]byte // SHA-256 of the admin token
	on     bool
	now    func() time.Time
	limit  *postLimiter
}

func newOperators(secret []byte, token string) *operators {
	o := &operators{secret: secret, now: time.Now, limit: newPostLimiter(1/loginEvery.Seconds(), loginBurst)}
	if token != "" {
		o.on, o.token = true, sha256.Sum256([]byte(token))
	}
	return o
}

// check reports whether token is the admin token, in time that does not
// depend on where they differ (both are hashed first, so not on the
// length either).
func (o *operators) check(token string) bool {
	h := sha256.Sum256([]byte(token))
	return o.on && subtle.ConstantTimeCompare(h[:], o.token[:]) == 1
}

func (o *operators) mac(personID string, expiry int64) []byte {
	h := hmac.New(sha256.New, o.secret)
	h.Write([]byte("hxchat/op/v1\x00"))
	h.Write([]byte(personID + "\x00" + strconv.FormatInt(expiry, 10) + "\x00"))
	h.Write(o.token[:])
	return h.Sum(nil)
}

// is reports whether r comes from an operator: a valid, unexpired
// operator cookie for the person making r. It needs identify on the route.
func (o *operators) is(r *http.Request) bool {
	if !o.on {
		return false
	}
	name := opCookieName
	if overTLS(r) {
		name = secureOpCookieName
	}
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) > 128 {
		return false
	}
	exp, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return false
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || o.now().Unix() >= expiry {
		return false
	}
	got, err := b64.DecodeString(mac)
	p := PersonFrom(r.Context())
	return err == nil && p.ID != "" && hmac.Equal(got, o.mac(p.ID, expiry))
}

// cookie returns the operator cookie for the person making r; maxAge < 0
// removes it.
func (o *operators) cookie(r *http.Request, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: opCookieName, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if overTLS(r) {
		c.Name, c.Secure = secureOpCookieName, true
	}
	if maxAge < 0 {
		c.MaxAge = -1
		return c
	}
	expiry := o.now().Add(maxAge).Unix()
	c.Value = strconv.FormatInt(expiry, 10) + "." + b64.EncodeToString(o.mac(PersonFrom(r.Context()).ID, expiry))
	c.MaxAge = int(maxAge.Seconds())
	return c
}

type operatorKey struct{}

// withOperator marks requests from an operator (isOperator), for the
// routes that show or do what operators may: me.css (which shows them every
// delete control), deletion, and the operators' page.
func withOperator(o *operators) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o.is(r) {
				r = r.WithContext(context.WithValue(r.Context(), operatorKey{}, true))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// isOperator reports whether withOperator found r to come from an operator.
func isOperator(r *http.Request) bool {
	op, _ := r.Context().Value(operatorKey{}).(bool)
	return op
}

// handleAdmin shows the operator page: sign in, or sign out.
func handleAdmin(o *operators) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusOK
		if !o.on {
			status = http.StatusNotFound
		}
		render(w, r, status, views.AdminPage(views.AdminState{Enabled: o.on, Operator: isOperator(r)}))
	}
}

// handleAdminLogin signs an operator in (form field token): the right
// token gets the operator cookie and a redirect to the operator page; a
// wrong one 403 and the form again. Attempts are rate-limited per client
// address (429). The log says who signed in, or failed to, by key and
// address; never the token.
func handleAdminLogin(logger *slog.Logger, o *operators, m *Metrics, cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		refuse := func(status int, reason string) {
			render(w, r, status, views.AdminPage(views.AdminState{Enabled: o.on, Problem: reason}))
		}
		if !o.on {
			refuse(http.StatusNotFound, "")
			return
		}
		if ok, wait := o.limit.allow(clientOf(r)); !ok {
			m.rejected("admin_rate")
			w.Header().Set("Retry-After", retryAfter(wait))
			refuse(http.StatusTooManyRequests, "Too many sign-in attempts; wait a little and try again.")
			return
		}
		if err := parseForm(w, r, cfg.MaxBody); err != nil {
			status, reason, metric := bodyProblem(err, "The token is far too long.")
			m.rejected(metric)
			refuse(status, reason)
			return
		}
		key := PersonFrom(r.Context()).Key
		if !o.check(r.PostForm.Get("token")) {
			m.rejected("admin_token")
			logger.LogAttrs(r.Context(), slog.LevelWarn, "operator sign-in refused", slog.String("key", key), slog.String("client", clientOf(r).String()))
			refuse(http.StatusForbidden, "That is not the admin token.")
			return
		}
		http.SetCookie(w, o.cookie(r, opSessionLen))
		logger.LogAttrs(r.Context(), slog.LevelInfo, "operator signed in", slog.String("key", key), slog.String("client", clientOf(r).String()))
		http.Redirect(w, r, views.AdminURL, http.StatusSeeOther)
	}
}

// handleAdminLogout signs an operator out: the cookie is removed.
func handleAdminLogout(logger *slog.Logger, o *operators) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if isOperator(r) {
			logger.LogAttrs(r.Context(), slog.LevelInfo, "operator signed out", slog.String("key", PersonFrom(r.Context()).Key))
		}
		http.SetCookie(w, o.cookie(r, -1))
		http.Redirect(w, r, views.AdminURL, http.StatusSeeOther)
	}
}
