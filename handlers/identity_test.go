package handlers

import (
	"encoding/base64"
	"encoding/hex"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

var (
	guestName = regexp.MustCompile(`^guest-[0-9a-f]{4}$`)
	youAre    = regexp.MustCompile(`You are <strong class="me">([^<]*)</strong>`)
	nameError = regexp.MustCompile(`(?s)<p\b[^>]*\bid="name-error"[^>]*>(.*?)</p>`)
	nameValue = regexp.MustCompile(`<input\b[^>]*\bid="name"[^>]*\bvalue="([^"]*)"`)
	authorOf  = regexp.MustCompile(`<li id="msg-(\d+)" class="msg" data-author="([0-9a-f]*)"><span class="author">([^<]*)</span>`)
)

// idCookie returns the identity cookie a response sets, or nil.
func idCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName || c.Name == secureCookieName {
			return c
		}
	}
	return nil
}

// personOf decodes an identity cookie signed with testSecret.
func personOf(t *testing.T, c *http.Cookie) Person {
	t.Helper()
	s := signer{secret: testSecret}
	id, name, ok := s.decode(c.Value)
	if !ok {
		t.Fatalf("cookie %q does not verify", c.Value)
	}
	return s.person(id, name)
}

// with returns r carrying c.
func with(r *http.Request, c *http.Cookie) *http.Request {
	if c != nil {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// getAs serves GET target as the person of cookie c (none when nil).
func (e *testEnv) getAs(target string, c *http.Cookie) *httptest.ResponseRecorder {
	return e.do(with(httptest.NewRequest(http.MethodGet, target, nil), c))
}

// postForm serves a form POST to target as the person of c.
func (e *testEnv) postForm(target string, form url.Values, c *http.Cookie, htmx bool) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if htmx {
		r.Header.Set("HX-Request", "true")
	}
	return e.do(with(r, c))
}

// newGuest makes a first visit and returns the cookie it got.
func (e *testEnv) newGuest(t *testing.T) *http.Cookie {
	t.Helper()
	c := idCookie(e.get("/"))
	if c == nil {
		t.Fatal("a first visit got no identity cookie")
	}
	return c
}

// named gives the person of c a name and returns their new cookie.
func (e *testEnv) named(t *testing.T, c *http.Cookie, name string) *http.Cookie {
	t.Helper()
	w := e.postForm("/name", url.Values{"name": {name}, "next": {"/"}}, c, false)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("POST /name %q: status %d, want 303; body %.300q", name, w.Code, w.Body.String())
	}
	nc := idCookie(w)
	if nc == nil {
		t.Fatalf("POST /name %q set no cookie", name)
	}
	return nc
}

// shownAs returns the display name a page shows its viewer.
func shownAs(t *testing.T, body string) string {
	t.Helper()
	m := youAre.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page does not say who the viewer is: %.500q", body)
	}
	return html.UnescapeString(m[1])
}

func TestPersonDisplayName(t *testing.T) {
	for _, tc := range []struct {
		p    Person
		want string
	}{
		{Person{Key: "0123456789ab", Name: "Ann"}, "Ann"},
		{Person{Key: "0123456789ab"}, "guest-0123"},
		{Person{}, "guest"},
	} {
		if got := tc.p.DisplayName(); got != tc.want {
			t.Errorf("%+v.DisplayName() = %q, want %q", tc.p, got, tc.want)
		}
		if _, err := chat.NormalizeName(tc.p.DisplayName()); err != nil {
			t.Errorf("display name %q breaks the name rules: %v", tc.p.DisplayName(), err)
		}
	}
}

func TestIdentityCookie(t *testing.T) {
	e := newEnv(t)
	w := e.get("/")
	c := idCookie(w)
	if c == nil {
		t.Fatalf("first visit: no %s cookie; headers %v", cookieName, w.Header())
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 365*24*60*60 || c.Secure {
		t.Errorf("cookie attributes %q, want HttpOnly, SameSite=Lax, Path=/, Max-Age one year, not Secure over HTTP", w.Header().Get("Set-Cookie"))
	}
	p := personOf(t, c)
	if len(p.ID) != 2*idLen || len(p.Key) != KeyLen || p.Name != "" {
		t.Errorf("new person %+v, want a %d-byte id, a %d-digit key and no name", p, idLen, KeyLen)
	}
	if strings.Contains(p.Key, p.ID[:8]) || strings.Contains(c.Value, p.Key) {
		t.Errorf("key %q gives away the id %q or is in the cookie", p.Key, p.ID)
	}
	shown := shownAs(t, w.Body.String())
	if !guestName.MatchString(shown) || shown != "guest-"+p.Key[:4] {
		t.Errorf("first visit shows %q, want guest- and the first 4 digits of key %q", shown, p.Key)
	}

	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Errorf("personal page has Cache-Control %q, want it private", cc)
	}

	t.Run("RoundTrip", func(t *testing.T) {
		for _, target := range []string{"/", "/chat/lobby/"} {
			w := e.getAs(target, c)
			if got := w.Header().Values("Set-Cookie"); len(got) != 0 {
				t.Errorf("GET %s with a good cookie set %q, want nothing", target, got)
			}
			if got := shownAs(t, w.Body.String()); got != shown {
				t.Errorf("GET %s with the cookie shows %q, want %q", target, got, shown)
			}
		}
	})
	t.Run("SecureOverTLS", func(t *testing.T) {
		w := e.do(httptest.NewRequest(http.MethodGet, "https://example.com/", nil))
		if c := idCookie(w); c == nil || !c.Secure || c.Name != secureCookieName {
			t.Errorf("cookie over HTTPS %q, want it Secure and named %s", w.Header().Get("Set-Cookie"), secureCookieName)
		}
	})
	t.Run("EachGuestDiffers", func(t *testing.T) {
		other := personOf(t, e.newGuest(t))
		if other.ID == p.ID || other.Key == p.Key {
			t.Errorf("two first visits got the same person: %+v and %+v", p, other)
		}
	})
	t.Run("OnlyPersonalRoutes", func(t *testing.T) {
		for _, target := range []string{"/static/app.css", "/healthz", "/metrics", "/favicon.ico", "/nope"} {
			if got := e.get(target).Header().Values("Set-Cookie"); len(got) != 0 {
				t.Errorf("GET %s set %q, want no cookie", target, got)
			}
		}
		for _, target := range []string{"/", "/chat/lobby/", "/chat/?room=lobby", "/me.css"} {
			if idCookie(e.get(target)) == nil {
				t.Errorf("GET %s without a cookie set none, want a new guest's", target)
			}
		}
		ts := e.serve(t)
		resp, _ := openStream(t, ts, "/chat/lobby/events", nil)
		if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != cookieName {
			t.Errorf("stream without a cookie: status %d, cookies %v; want 200 and a new guest's", resp.StatusCode, resp.Cookies())
		}
	})
}

// TestTamperedCookieIgnored: a cookie that was not signed by this server
// with exactly this id and name is never trusted: the request is a new
// guest and gets a fresh cookie.
func TestTamperedCookieIgnored(t *testing.T) {
	e := newEnv(t)
	good := e.named(t, e.newGuest(t), "Alice")
	alice := personOf(t, good)
	parts := strings.Split(good.Value, ".")
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(s string) string {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		b[0] ^= 1
		return enc(b)
	}
	rawID, _ := hex.DecodeString(alice.ID)
	for _, tc := range []struct{ name, value string }{
		{"IDChanged", flip(parts[0]) + "." + parts[1] + "." + parts[2]},
		{"NameChanged", parts[0] + "." + enc([]byte("Mallory")) + "." + parts[2]},
		{"NameRemoved", parts[0] + ".." + parts[2]},
		{"MACChanged", parts[0] + "." + parts[1] + "." + flip(parts[2])},
		{"MACTruncated", parts[0] + "." + parts[1] + "." + parts[2][:20]},
		{"MACMissing", parts[0] + "." + parts[1] + "."},
		{"TwoParts", parts[0] + "." + parts[1]},
		{"FourParts", good.Value + "." + parts[2]},
		{"PaddedBase64", parts[0] + "==." + parts[1] + "." + parts[2]},
		{"ShortID", enc(rawID[:8]) + "." + parts[1] + "." + enc(signer{testSecret}.mac(rawID[:8], "Alice"))},
		{"OtherSecret", signer{secret: []byte("some other secret, 32 bytes long")}.encode(rawID, "Mallory")},
		{"OtherSecretSameName", signer{secret: []byte("some other secret, 32 bytes long")}.encode(rawID, "Alice")},
		{"Garbage", "not a cookie at all"},
		{"Empty", ""},
		{"Huge", strings.Repeat("A", 4000) + "." + parts[1] + "." + parts[2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Cookie", cookieName+"="+tc.value)
			w := e.do(r)
			c := idCookie(w)
			if c == nil {
				t.Fatalf("tampered cookie: no fresh cookie set")
			}
			p := personOf(t, c)
			if p.ID == alice.ID || p.Key == alice.Key || p.Name != "" {
				t.Errorf("tampered cookie gave %+v, want a new guest (not %+v)", p, alice)
			}
			shown := shownAs(t, w.Body.String())
			if !guestName.MatchString(shown) || shown != p.DisplayName() {
				t.Errorf("tampered cookie: page shows %q, want the new guest %q", shown, p.DisplayName())
			}
		})
	}
	t.Run("PostsAsNewGuest", func(t *testing.T) {
		forged := &http.Cookie{Name: cookieName, Value: signer{secret: []byte("some other secret, 32 bytes long")}.encode(rawID, "Alice")}
		if w := e.postForm("/chat/lobby/messages", url.Values{"message": {"hi"}}, forged, false); w.Code != http.StatusSeeOther {
			t.Fatalf("post: status %d", w.Code)
		}
		got := e.recent(t, "lobby", 1)
		if len(got) != 1 || got[0].Author == "Alice" || got[0].AuthorKey == alice.Key || !guestName.MatchString(got[0].Author) {
			t.Errorf("post with a forged cookie stored %+v, want a new guest's message", got)
		}
	})
	t.Run("SignedNameNoLongerValid", func(t *testing.T) {
		// Signed by this server, but the name breaks today's rules: the
		// person keeps their id and loses the name.
		c := &http.Cookie{Name: cookieName, Value: signer{testSecret}.encode(rawID, "<b>Alice</b>")}
		w := e.getAs("/", c)
		nc := idCookie(w)
		if nc == nil {
			t.Fatal("no cookie re-issued")
		}
		if p := personOf(t, nc); p.ID != alice.ID || p.Name != "" {
			t.Errorf("re-issued %+v, want %s without a name", p, alice.ID)
		}
	})
}

func TestSetName(t *testing.T) {
	e := newEnv(t)
	guest := e.newGuest(t)
	before := personOf(t, guest)

	t.Run("Valid", func(t *testing.T) {
		w := e.postForm("/name", url.Values{"name": {"  Jo   Ann O. "}, "next": {"/chat/lobby/"}}, guest, false)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/chat/lobby/" {
			t.Fatalf("status %d, Location %q; want 303 to /chat/lobby/", w.Code, w.Header().Get("Location"))
		}
		c := idCookie(w)
		if c == nil {
			t.Fatal("no cookie set")
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 {
			t.Errorf("cookie attributes %q", w.Header().Get("Set-Cookie"))
		}
		p := personOf(t, c)
		if p.ID != before.ID || p.Key != before.Key || p.Name != "Jo Ann O." {
			t.Errorf("after naming: %+v, want the same person named %q", p, "Jo Ann O.")
		}
		page := e.getAs("/chat/lobby/", c).Body.String()
		if got := shownAs(t, page); got != "Jo Ann O." {
			t.Errorf("room page shows %q, want %q", got, "Jo Ann O.")
		}
		if m := nameValue.FindStringSubmatch(page); m == nil || html.UnescapeString(m[1]) != "Jo Ann O." {
			t.Errorf("name field %v, want it to hold the name", m)
		}

		t.Run("EmptyClears", func(t *testing.T) {
			w := e.postForm("/name", url.Values{"name": {"   "}, "next": {"/"}}, c, false)
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", w.Code)
			}
			p := personOf(t, idCookie(w))
			if p.ID != before.ID || p.Name != "" || p.DisplayName() != before.DisplayName() {
				t.Errorf("after clearing: %+v, want the guest %s again", p, before.DisplayName())
			}
		})
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, tc := range []struct {
			name, value, next, reason string
			room                      bool
		}{
			{"HTMLOnIndex", "<b>", "/", "'<'", false},
			{"HTMLInRoom", "<b>", "/chat/lobby/", "'<'", true},
			{"TooLong", strings.Repeat("a", 33), "/chat/lobby/", "33 characters", true},
			{"Bidi", "Ann\u202Etxt", "/", "bidirectional", false},
			{"Emoji", "Ann 😀", "/chat/%ED%95%9C/", "'😀'", true},
			{"Tab", "Jo\tAnn", "/chat/lobby/", "control character", true},
			{"BadNextIsIndex", "<b>", "//evil.example/", "'<'", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := e.postForm("/name", url.Values{"name": {tc.value}, "next": {tc.next}}, guest, false)
				if w.Code != http.StatusBadRequest {
					t.Fatalf("status %d, want 400", w.Code)
				}
				if got := w.Header().Values("Set-Cookie"); len(got) != 0 {
					t.Errorf("refused name set %q, want nothing changed", got)
				}
				body := w.Body.String()
				checkPageHygiene(t, body)
				if isRoom := logElem.FindString(body) != ""; isRoom != tc.room {
					t.Errorf("answer is the room page: %v, want %v", isRoom, tc.room)
				}
				m := nameError.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("no name-error: %.500q", body)
				}
				if reason := html.UnescapeString(m[1]); !strings.Contains(reason, tc.reason) {
					t.Errorf("reason %q, want it to mention %q", reason, tc.reason)
				}
				if !strings.Contains(body, `role="alert"`) || !strings.Contains(body, `aria-describedby="name-error name-hint"`) {
					t.Errorf("error not announced or not tied to the field")
				}
				v := nameValue.FindStringSubmatch(body)
				if v == nil || html.UnescapeString(v[1]) != tc.value {
					t.Errorf("name field %v, want it to hold the refused %q", v, tc.value)
				}
				if strings.Contains(body, "<b>") {
					t.Errorf("the refused name is output raw")
				}
				if got := shownAs(t, body); got != before.DisplayName() {
					t.Errorf("page shows %q, want the unchanged %q", got, before.DisplayName())
				}
			})
		}
	})

	t.Run("Next", func(t *testing.T) {
		for _, tc := range []struct{ next, want string }{
			{"/", "/"},
			{"/chat/lobby/", "/chat/lobby/"},
			{"/chat/%ED%95%9C/", "/chat/%ED%95%9C/"},
			{"/chat/lobby/?x=1", "/chat/lobby/?x=1"},
			{"", "/"},
			{"//evil.example/", "/"},
			{"https://evil.example/", "/"},
			{"http:/evil.example", "/"},
			{`/\evil.example`, "/"},
			{`\\evil.example`, "/"},
			{"/\t/evil.example", "/"},
			{"/\n/evil.example", "/"},
			{"javascript:alert(1)", "/"},
			{"chat/lobby/", "/"},
			{"/%2F/evil.example", "/%2F/evil.example"},
		} {
			w := e.postForm("/name", url.Values{"name": {"Ann"}, "next": {tc.next}}, guest, false)
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tc.want {
				t.Errorf("next %q: status %d, Location %q; want 303 to %q", tc.next, w.Code, w.Header().Get("Location"), tc.want)
			}
		}
	})

	t.Run("WithoutCookie", func(t *testing.T) {
		// A first request that names itself gets one cookie: the named one.
		w := e.postForm("/name", url.Values{"name": {"Ann"}, "next": {"/"}}, nil, false)
		if got := w.Header().Values("Set-Cookie"); w.Code != http.StatusSeeOther || len(got) != 1 {
			t.Fatalf("status %d, Set-Cookie %q; want 303 and one cookie", w.Code, got)
		}
		if p := personOf(t, idCookie(w)); p.Name != "Ann" || p.ID == before.ID {
			t.Errorf("got %+v, want a new person named Ann", p)
		}
	})

	t.Run("CrossSiteRefused", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/name", strings.NewReader("name=Mallory&next=/"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		w := e.do(with(r, guest))
		if w.Code != http.StatusForbidden || idCookie(w) != nil {
			t.Errorf("cross-site POST /name: status %d, cookie %v; want 403 and nothing set", w.Code, idCookie(w))
		}
	})
}

func TestAuthorOnMessages(t *testing.T) {
	for _, htmx := range []bool{false, true} {
		t.Run(map[bool]string{false: "Plain", true: "Htmx"}[htmx], func(t *testing.T) {
			e := newEnv(t)
			alice := e.named(t, e.newGuest(t), "Alice")
			guest := e.newGuest(t)
			want := map[string]Person{"from alice": personOf(t, alice), "from a guest": personOf(t, guest)}
			for text, c := range map[string]*http.Cookie{"from alice": alice, "from a guest": guest} {
				w := e.postForm("/chat/lobby/messages", url.Values{"message": {text}}, c, htmx)
				if w.Code != map[bool]int{false: http.StatusSeeOther, true: http.StatusOK}[htmx] {
					t.Fatalf("post %q: status %d", text, w.Code)
				}
			}
			stored := e.recent(t, "lobby", 10)
			if len(stored) != 2 {
				t.Fatalf("stored %d messages, want 2", len(stored))
			}
			for _, m := range stored {
				p := want[m.Text]
				if m.Author != p.DisplayName() || m.AuthorKey != p.Key {
					t.Errorf("%q stored by %q (key %q), want %q (key %q)", m.Text, m.Author, m.AuthorKey, p.DisplayName(), p.Key)
				}
			}
			// Everyone sees the same log: author name and key on each message.
			page := e.getAs("/chat/lobby/", guest).Body.String()
			got := map[string]string{}
			for _, m := range authorOf.FindAllStringSubmatch(page, -1) {
				got[m[2]] = html.UnescapeString(m[3])
			}
			for _, p := range want {
				if got[p.Key] != p.DisplayName() {
					t.Errorf("room page shows %q for key %s, want %q (all: %v)", got[p.Key], p.Key, p.DisplayName(), got)
				}
			}
			if !guestName.MatchString(want["from a guest"].DisplayName()) {
				t.Errorf("guest posted as %q, want guest-XXXX", want["from a guest"].DisplayName())
			}
		})
	}
}

// TestNameEscaping: a name that reached the store with markup in it (the
// rules refuse such names, but the store is not the place to rely on that)
// is text on the page, in the fragment and in the stream.
func TestNameEscaping(t *testing.T) {
	const evil = `<b>mallory</b>`
	const escaped = `&lt;b&gt;mallory&lt;/b&gt;`
	e := newEnv(t)
	ts := e.serve(t)
	rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
	// Straight into the store, past the name rules; the store hands it on.
	m, err := e.store.Append(t.Context(), chat.Message{Room: "lobby", Author: evil, AuthorKey: "0123456789ab", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{
		"page":     e.get("/chat/lobby/").Body.String(),
		"fragment": fragment(t, m),
		"stream":   rd.nextMessage(t).data(),
	} {
		if strings.Contains(out, "<b>") || !strings.Contains(out, `<span class="author">`+escaped+`</span>`) {
			t.Errorf("%s: author not escaped as text: %.600q", what, out)
		}
	}
}

func TestMeCSS(t *testing.T) {
	e := newEnv(t)
	c := e.newGuest(t)
	p := personOf(t, c)
	w := e.getAs("/me.css", c)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type %q, want text/css", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control %q, want private, no-store", cc)
	}
	body := w.Body.String()
	if !strings.Contains(body, `.msg[data-author="`+p.Key+`"]`) {
		t.Errorf("stylesheet does not select the person's key %s: %q", p.Key, body)
	}
	if n := strings.Count(body, `data-author="`); n != strings.Count(body, `data-author="`+p.Key+`"`) {
		t.Errorf("stylesheet selects other keys: %q", body)
	}
	other := e.getAs("/me.css", e.newGuest(t)).Body.String()
	if other == body {
		t.Errorf("two people got the same stylesheet")
	}
	// A first request gets the stylesheet of the guest its new cookie names.
	w = e.get("/me.css")
	if nc := idCookie(w); nc == nil || !strings.Contains(w.Body.String(), personOf(t, nc).Key) {
		t.Errorf("first /me.css does not match its new cookie")
	}
	// Every page links it after app.css.
	page := e.getAs("/", c).Body.String()
	app, me := strings.Index(page, "app.css"), strings.Index(page, `<link rel="stylesheet" href="/me.css">`)
	if app < 0 || me < app {
		t.Errorf("page does not link /me.css after app.css")
	}
}

func TestNameFormOnPages(t *testing.T) {
	e := newEnv(t)
	c := e.newGuest(t)
	for target, next := range map[string]string{"/": "/", "/chat/lobby/": "/chat/lobby/", "/chat/%ED%95%9C/": "/chat/%ED%95%9C/"} {
		body := e.getAs(target, c).Body.String()
		form := regexp.MustCompile(`(?s)<form\b[^>]*\bid="name-form"[^>]*>.*?</form>`).FindString(body)
		if form == "" {
			t.Errorf("%s: no name form", target)
			continue
		}
		for _, want := range []string{
			`method="post"`, `action="` + views.NameURL + `"`, `<label for="name">Your name</label>`,
			`name="name"`, `maxlength="32"`, `<button type="submit">Save</button>`,
			`<input type="hidden" name="next" value="` + next + `">`,
			"Shown on your messages; empty for a guest name",
		} {
			if !strings.Contains(form, want) {
				t.Errorf("%s: name form lacks %q: %s", target, want, form)
			}
		}
		if strings.Contains(form, "hx-") || strings.Contains(form, "role=\"alert\"") {
			t.Errorf("%s: name form has htmx attributes or an error: %s", target, form)
		}
	}
}
