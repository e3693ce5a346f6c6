package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hxchat/hxchat/chat"
)

// Identity cookies. A person is a random 16-byte id and an optional display
// name, kept in one cookie signed with the server secret:
//
//	hxchat_id = base64url(id) "." base64url(name) "." base64url(mac)
//	mac       = HMAC-SHA256(secret, "hxchat/v1\x00" id "\x00" name)
//
// A cookie that is missing, malformed or does not verify is ignored: the
// request gets a new guest (a fresh id) and a fresh cookie. Nothing in the
// cookie is trusted before its mac is checked.
const (
	cookieName = "hxchat_id"
	// secureCookieName is the cookie's name over TLS (directly or through
	// a trusted proxy): browsers accept a __Host- cookie only when it is
	// Secure, has Path=/ and no Domain, so no subdomain, and no page served
	// over plain HTTP, can set or overwrite it.
	secureCookieName = "__Host-" + cookieName
	cookieMaxAge     = 365 * 24 * 60 * 60 // one year, in seconds
	idLen            = 16
	// maxCookieLen bounds the cookie value looked at: the longest name
	// (32 characters of up to 4 bytes) and the rest fit well within it.
	maxCookieLen = 512
	// KeyLen is the length of Person.Key in hex digits.
	KeyLen = 12
)

var b64 = base64.RawURLEncoding.Strict()

// Person is who makes a request, as the identity cookie says.
type Person struct {
	// ID is the secret id of the person's cookie, in hex. It is as good as
	// the cookie: never show or log it.
	ID string
	// Key is the person's public key: KeyLen hex digits derived from the id
	// with the server secret, stable for as long as the cookie, and telling
	// nothing about the id. Messages carry it (chat.Message.AuthorKey).
	Key string
	// Name is the display name the person picked; empty for a guest.
	Name string
}

// DisplayName is the name shown on the person's messages: their name, or
// "guest-" and the first four digits of their key.
func (p Person) DisplayName() string {
	switch {
	case p.Name != "":
		return p.Name
	case len(p.Key) >= 4:
		return "guest-" + p.Key[:4]
	default:
		return "guest"
	}
}

// Author is the person as the author of a message.
func (p Person) Author() chat.Author {
	return chat.Author{Name: p.DisplayName(), Key: p.Key}
}

type personKey struct{}

// PersonFrom returns the person identify put in ctx; the zero Person (a
// guest without a key) on routes without identify.
func PersonFrom(ctx context.Context) Person {
	p, _ := ctx.Value(personKey{}).(Person)
	return p
}

// withPerson returns ctx carrying p.
func withPerson(ctx context.Context, p Person) context.Context {
	return context.WithValue(ctx, personKey{}, p)
}

// signer makes and checks identity cookies with one secret.
type signer struct{ secret []byte }

func (s signer) mac(id []byte, name string) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("hxchat/v1\x00"))
	h.Write(id)
	h.Write([]byte{0})
	h.Write([]byte(name))
	return h.Sum(nil)
}

// key derives the public key of id: a different message under the same
// secret, so knowing a key gives nothing towards the id or a cookie's mac.
func (s signer) key(id []byte) string {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("hxchat/key\x00"))
	h.Write(id)
	return hex.EncodeToString(h.Sum(nil))[:KeyLen]
}

// person returns the Person of id and name.
func (s signer) person(id []byte, name string) Person {
	return Person{ID: hex.EncodeToString(id), Key: s.key(id), Name: name}
}

// encode returns the cookie value for id and name.
func (s signer) encode(id []byte, name string) string {
	return b64.EncodeToString(id) + "." + b64.EncodeToString([]byte(name)) + "." + b64.EncodeToString(s.mac(id, name))
}

// decode checks a cookie value and returns its id and name. ok is false for
// anything that is not a value this server signed with its secret.
func (s signer) decode(v string) (id []byte, name string, ok bool) {
	if len(v) > maxCookieLen {
		return nil, "", false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return nil, "", false
	}
	id, err := b64.DecodeString(parts[0])
	if err != nil || len(id) != idLen {
		return nil, "", false
	}
	rawName, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, "", false
	}
	mac, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(mac, s.mac(id, string(rawName))) {
		return nil, "", false
	}
	return id, string(rawName), true
}

// cookie returns the identity cookie for id and name: Secure, and named
// with the __Host- prefix, when the browser reached us over TLS.
func (s signer) cookie(secure bool, id []byte, name string) *http.Cookie {
	c := &http.Cookie{
		Name:     cookieName,
		Value:    s.encode(id, name),
		Path:     "/",
		MaxAge:   cookieMaxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if secure {
		c.Name, c.Secure = secureCookieName, true
	}
	return c
}

// expiredCookie removes the plain cookie from a browser that reaches us
// over TLS, where only the __Host- one counts.
var expiredCookie = &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode}

type secureKey struct{}

// overTLS reports whether identify found r to have come over TLS, which
// decides the cookie's name and Secure attribute.
func overTLS(r *http.Request) bool {
	secure, _ := r.Context().Value(secureKey{}).(bool)
	return secure
}

// identify puts the requesting Person in the request context (PersonFrom).
// A request without a valid identity cookie is a new guest: a fresh random
// id, and a Set-Cookie for it on the response. A request that came over
// TLS (directly, or through one of the trusted proxies with
// X-Forwarded-Proto: https) gets a Secure __Host- cookie, and only that one
// counts: a plain cookie it sends is removed, never taken over, because a
// plain cookie can be planted (by a page of a subdomain, or a man in the
// middle of a plain HTTP request), and taking it over would make the
// browser post as whoever planted it.
func identify(secret []byte, trusted []netip.Prefix) func(http.Handler) http.Handler {
	s := signer{secret: secret}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var (
				id    []byte
				name  string
				valid bool
			)
			secure := secureRequest(r, trusted)
			want := cookieName
			if secure {
				want = secureCookieName
			}
			if c, err := r.Cookie(want); err == nil {
				id, name, valid = s.decode(c.Value)
			}
			_, plainErr := r.Cookie(cookieName)
			planted := secure && plainErr == nil
			if valid && name != "" {
				// Signed by us, so it passed the rules when it was set; a
				// name the rules no longer allow is dropped, the id kept.
				if n, err := chat.NormalizeChosenName(name); err != nil || n != name {
					name, valid = "", false
				}
			}
			if id == nil || !valid {
				if id == nil {
					id = newID()
				}
				http.SetCookie(w, s.cookie(secure, id, name))
			}
			if planted {
				http.SetCookie(w, expiredCookie)
			}
			// What these routes answer is the person's own (their name on
			// the page): no shared cache may keep it for someone else.
			// Handlers with their own caching rules set them after this.
			w.Header().Set("Cache-Control", "private, no-cache")
			w.Header().Add("Vary", "Cookie")
			ctx := context.WithValue(withPerson(r.Context(), s.person(id, name)), secureKey{}, secure)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// newID returns a fresh random person id.
func newID() []byte {
	id := make([]byte, idLen)
	_, _ = rand.Read(id) // crypto/rand.Read never fails
	return id
}

// setName re-issues r's identity cookie with name (empty: back to a guest
// name), keeping the person's id. It needs identify on the route.
func setName(w http.ResponseWriter, r *http.Request, secret []byte, name string) error {
	p := PersonFrom(r.Context())
	id, err := hex.DecodeString(p.ID)
	if err != nil || len(id) != idLen {
		return errNoPerson
	}
	// identify may have set a cookie for a new guest on this response:
	// this one replaces it rather than following it.
	h := w.Header()
	kept := h.Values("Set-Cookie")[:0:0]
	secure := overTLS(r)
	c := signer{secret: secret}.cookie(secure, id, name)
	for _, v := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(v, c.Name+"=") {
			kept = append(kept, v)
		}
	}
	h["Set-Cookie"] = kept
	http.SetCookie(w, c)
	return nil
}
