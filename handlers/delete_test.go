package handlers

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// adminToken is the operators' token of the test servers that have one.
const adminToken = "operators-token-0123456789"

// persona is a person of the test server: their identity cookie, and
// their operator cookie once signed in.
type persona struct {
	key    string
	cookie *http.Cookie
	op     *http.Cookie
}

func newPersona(id byte) persona {
	raw := bytes.Repeat([]byte{id}, idLen)
	s := signer{secret: testSecret}
	return persona{key: s.key(raw), cookie: s.cookie(false, raw, "")}
}

// author is the persona as the author of a message.
func (p persona) author() chat.Author { return chat.Author{Name: "p-" + p.key[:4], Key: p.key} }

// request adds the persona's cookies to r.
func (p persona) request(r *http.Request) *http.Request {
	r.AddCookie(p.cookie)
	if p.op != nil {
		r.AddCookie(p.op)
	}
	return r
}

// withAdmin gives a test server operators.
func withAdmin(o *envOptions) { o.config.AdminToken = adminToken }

// signIn signs p in as an operator on e and returns p with the cookie.
func signIn(t *testing.T, e *testEnv, p persona) persona {
	t.Helper()
	w := e.do(p.request(formRequest(http.MethodPost, "/admin/login", url.Values{"token": {adminToken}})))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign in: status %d, want 303; body %.300q", w.Code, w.Body.String())
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == opCookieName && c.Value != "" {
			p.op = c
			return p
		}
	}
	t.Fatalf("sign in set no %s cookie: %v", opCookieName, w.Result().Cookies())
	return p
}

func formRequest(method, target string, form url.Values) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func deleteRequest(path string, htmx bool) *http.Request {
	r := formRequest(http.MethodPost, path, nil)
	if htmx {
		r.Header.Set("HX-Request", "true")
	}
	return r
}

func TestDelete(t *testing.T) {
	alice, bob, carol := newPersona(1), newPersona(2), newPersona(3)
	for _, tc := range []struct {
		name string
		// as: who deletes; opSign: sign them in as an operator first.
		as     persona
		opSign bool
		path   string // "" : alice's message seq 1 in lobby
		htmx   bool
		hdr    map[string]string
		want   int
		// deleted: alice's message is erased afterwards.
		deleted bool
		body    string // the answer contains this
	}{
		{name: "AuthorPlain", as: alice, want: http.StatusSeeOther, deleted: true},
		{name: "AuthorHtmx", as: alice, htmx: true, want: http.StatusOK, deleted: true, body: `<li id="msg-1" class="msg deleted">`},
		{name: "OtherPlain", as: bob, want: http.StatusForbidden, body: "You can delete only your own messages."},
		{name: "OtherHtmx", as: bob, htmx: true, want: http.StatusForbidden, body: `<hx-partial hx-target="#notice" hx-swap="innerHTML">You can delete only your own messages.</hx-partial>`},
		{name: "Operator", as: carol, opSign: true, want: http.StatusSeeOther, deleted: true},
		{name: "OperatorHtmx", as: carol, opSign: true, htmx: true, want: http.StatusOK, deleted: true},
		{name: "UnknownSeq", as: alice, path: "/chat/lobby/messages/99/delete", want: http.StatusNotFound, body: "no such message"},
		{name: "UnknownRoom", as: alice, path: "/chat/elsewhere/messages/1/delete", want: http.StatusNotFound},
		{name: "OperatorUnknownSeq", as: carol, opSign: true, path: "/chat/lobby/messages/99/delete", want: http.StatusNotFound},
		{name: "SeqZero", as: alice, path: "/chat/lobby/messages/0/delete", want: http.StatusBadRequest},
		{name: "SeqNegative", as: alice, path: "/chat/lobby/messages/-1/delete", want: http.StatusBadRequest},
		{name: "SeqWord", as: alice, path: "/chat/lobby/messages/one/delete", want: http.StatusBadRequest},
		{name: "SeqExponent", as: alice, path: "/chat/lobby/messages/1e0/delete", want: http.StatusBadRequest},
		{name: "SeqPlus", as: alice, path: "/chat/lobby/messages/+1/delete", want: http.StatusBadRequest},
		{name: "SeqHuge", as: alice, path: "/chat/lobby/messages/9223372036854775808/delete", want: http.StatusBadRequest},
		{name: "SeqLeadingZeros", as: alice, path: "/chat/lobby/messages/0001/delete", want: http.StatusSeeOther, deleted: true},
		{name: "BadRoom", as: alice, path: "/chat/a%20b/messages/1/delete", want: http.StatusBadRequest},
		{name: "CrossSite", as: alice, hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: http.StatusForbidden},
		{name: "CrossOrigin", as: alice, hdr: map[string]string{"Origin": "https://evil.example"}, want: http.StatusForbidden},
		{name: "SameOrigin", as: alice, hdr: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: http.StatusSeeOther, deleted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withAdmin)
			if _, err := e.hub.Post(t.Context(), "lobby", alice.author(), "secret plans"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.hub.Post(t.Context(), "lobby", bob.author(), "bob's"); err != nil {
				t.Fatal(err)
			}
			as := tc.as
			if tc.opSign {
				as = signIn(t, e, as)
			}
			path := tc.path
			if path == "" {
				path = "/chat/lobby/messages/1/delete"
			}
			r := as.request(deleteRequest(path, tc.htmx))
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			w := e.do(r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d; body %.400q", w.Code, tc.want, w.Body.String())
			}
			if tc.want == http.StatusSeeOther {
				if got := w.Header().Get("Location"); got != "/chat/lobby/" {
					t.Errorf("Location %q, want /chat/lobby/", got)
				}
			}
			if tc.body != "" && !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body lacks %q: %.500q", tc.body, w.Body.String())
			}
			msgs := e.recent(t, "lobby", 10)
			wantLen := 2
			if tc.deleted {
				wantLen = 3
			}
			if len(msgs) != wantLen {
				t.Fatalf("lobby holds %d messages, want %d (a record only when deleted)", len(msgs), wantLen)
			}
			if got := msgs[0].Deleted; got != tc.deleted {
				t.Errorf("alice's message Deleted = %v, want %v", got, tc.deleted)
			}
			if tc.deleted && (msgs[0].Text != "" || msgs[2].Deletes != 1) {
				t.Errorf("after deletion: text %q, record %+v", msgs[0].Text, msgs[2])
			}
			if msgs[1].Deleted || msgs[1].Text != "bob's" {
				t.Errorf("bob's message touched: %+v", msgs[1])
			}
			// The room page never shows the deleted text again.
			page := e.do(as.request(httptest.NewRequest(http.MethodGet, "/chat/lobby/", nil))).Body.String()
			if strings.Contains(page, "secret plans") == tc.deleted {
				t.Errorf("room page shows the text: %v, want %v", !tc.deleted, !tc.deleted)
			}
		})
	}
}

// TestDeleteTwiceAndLog: a second deletion succeeds without a second
// record, and the log says who deleted what, never the text.
func TestDeleteTwiceAndLog(t *testing.T) {
	var log syncBuffer
	e := newEnv(t, withAdmin, func(o *envOptions) { o.log = &log })
	alice := newPersona(1)
	if _, err := e.hub.Post(t.Context(), "lobby", alice.author(), "regrettable words"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if w := e.do(alice.request(deleteRequest("/chat/lobby/messages/1/delete", false))); w.Code != http.StatusSeeOther {
			t.Fatalf("deletion #%d: status %d, want 303", i+1, w.Code)
		}
	}
	if msgs := e.recent(t, "lobby", 10); len(msgs) != 2 {
		t.Errorf("lobby holds %d messages after two deletions, want 2 (one record)", len(msgs))
	}
	out := log.String()
	if n := strings.Count(out, `msg="message deleted"`); n != 1 {
		t.Errorf("log has %d deletion lines, want 1:\n%s", n, out)
	}
	for _, want := range []string{"key=" + alice.key, "room=lobby", "seq=1", "operator=false"} {
		if !strings.Contains(out, want) {
			t.Errorf("deletion log line lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "regrettable") {
		t.Errorf("the log holds the deleted text:\n%s", out)
	}
}

// TestDeleteLive: an open stream replaces the message through the record,
// in the room's order, and a stream resumed from before the deletion
// never sees the text.
func TestDeleteLive(t *testing.T) {
	e := newEnv(t)
	ts := e.serve(t)
	alice := newPersona(1)
	m, err := e.hub.Post(t.Context(), "lobby", alice.author(), "oops, my password")
	if err != nil {
		t.Fatal(err)
	}
	stream := openOK(t, ts, "/chat/lobby/events?after="+chat.Cursor{Epoch: m.Epoch, Seq: m.Seq}.String(), nil)
	if w := e.do(alice.request(deleteRequest("/chat/lobby/messages/1/delete", false))); w.Code != http.StatusSeeOther {
		t.Fatalf("delete: status %d", w.Code)
	}
	ev := stream.nextMessage(t)
	if ev.ID != "2" || ev.Epoch != m.Epoch {
		t.Errorf("deletion event id %q, want the record's seq 2: %+v", ev.ID, ev)
	}
	want := `<hx-partial hx-target="#msg-1" hx-swap="outerHTML"><li id="msg-1" class="msg deleted">`
	if !strings.Contains(ev.data(), want) {
		t.Errorf("deletion event %q lacks %q", ev.data(), want)
	}
	// Resumed from before the message: the placeholder, then the record.
	resumed := openOK(t, ts, "/chat/lobby/events?after=0-"+m.Epoch, nil)
	evs := resumed.messagesUntil(t, "2")
	if got := ids(evs); len(got) != 2 {
		t.Fatalf("resumed stream gave %v, want the message and the record", got)
	}
	for _, ev := range evs {
		if strings.Contains(ev.data(), "password") {
			t.Errorf("resumed stream sent the deleted text: %q", ev.data())
		}
	}
	if !strings.Contains(evs[0].data(), `class="msg deleted"`) {
		t.Errorf("replayed message is not the placeholder: %q", evs[0].data())
	}
	// A cursor of another history gets a snapshot: the placeholder, and
	// not the record (it would target an element the snapshot replaced).
	snap := openOK(t, ts, "/chat/lobby/events?after=5-0ther0ep", nil)
	ev = snap.nextMessage(t)
	if !strings.HasPrefix(ev.data(), `<hx-partial hx-target="#log" hx-swap="innerHTML">`) || ev.ID != "2" {
		t.Fatalf("a foreign cursor got %q (id %s), want a snapshot up to seq 2", ev.data(), ev.ID)
	}
	if strings.Contains(ev.data(), "password") || !strings.Contains(ev.data(), `<li id="msg-1" class="msg deleted">`) || strings.Contains(ev.data(), `hx-target="#msg-1"`) {
		t.Errorf("snapshot after the deletion: %q", ev.data())
	}
}

func TestAdminSignIn(t *testing.T) {
	t.Run("NoOperators", func(t *testing.T) {
		e := newEnv(t)
		p := newPersona(1)
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodGet, "/admin", nil),
			formRequest(http.MethodPost, "/admin/login", url.Values{"token": {""}}),
			formRequest(http.MethodPost, "/admin/login", url.Values{"token": {adminToken}}),
		} {
			w := e.do(p.request(r))
			if w.Code != http.StatusNotFound || len(w.Result().Cookies()) > 0 && w.Result().Cookies()[0].Name == opCookieName {
				t.Errorf("%s %s without a token: status %d, cookies %v; want 404 and no operator cookie", r.Method, r.URL, w.Code, w.Result().Cookies())
			}
		}
	})
	t.Run("WrongToken", func(t *testing.T) {
		e := newEnv(t, withAdmin)
		p := newPersona(1)
		for _, token := range []string{"", "wrong", adminToken + "x", adminToken[:len(adminToken)-1], strings.ToUpper(adminToken)} {
			w := e.do(p.request(formRequest(http.MethodPost, "/admin/login", url.Values{"token": {token}})))
			if w.Code != http.StatusForbidden && w.Code != http.StatusTooManyRequests {
				t.Errorf("token %q: status %d, want 403", token, w.Code)
			}
			for _, c := range w.Result().Cookies() {
				if c.Name == opCookieName {
					t.Errorf("token %q set an operator cookie", token)
				}
			}
		}
	})
	t.Run("RateLimited", func(t *testing.T) {
		e := newEnv(t, withAdmin)
		p := newPersona(1)
		var codes []int
		for range loginBurst + 2 {
			codes = append(codes, e.do(p.request(formRequest(http.MethodPost, "/admin/login", url.Values{"token": {"guess"}}))).Code)
		}
		if codes[0] != http.StatusForbidden || codes[len(codes)-1] != http.StatusTooManyRequests {
			t.Errorf("statuses of %d wrong attempts = %v, want 403 first and 429 at the end", len(codes), codes)
		}
		// Even the right token waits now.
		if w := e.do(p.request(formRequest(http.MethodPost, "/admin/login", url.Values{"token": {adminToken}}))); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Errorf("right token while limited: status %d, Retry-After %q; want 429 with one", w.Code, w.Header().Get("Retry-After"))
		}
	})
	t.Run("SignInOut", func(t *testing.T) {
		e := newEnv(t, withAdmin)
		p := signIn(t, e, newPersona(1))
		css := e.do(p.request(httptest.NewRequest(http.MethodGet, "/me.css", nil))).Body.String()
		if !strings.Contains(css, ".msg { --delete: inline-block; }") {
			t.Errorf("an operator's me.css does not show every delete control:\n%s", css)
		}
		page := e.do(p.request(httptest.NewRequest(http.MethodGet, "/admin", nil))).Body.String()
		if !strings.Contains(page, "signed in as an operator") {
			t.Errorf("admin page does not say the operator is signed in: %.300q", page)
		}
		// The operator cookie is worth nothing with someone else's identity.
		thief := newPersona(9)
		thief.op = p.op
		css = e.do(thief.request(httptest.NewRequest(http.MethodGet, "/me.css", nil))).Body.String()
		if strings.Contains(css, ".msg { --delete") {
			t.Errorf("a copied operator cookie made another person an operator")
		}
		w := e.do(p.request(formRequest(http.MethodPost, "/admin/logout", nil)))
		if w.Code != http.StatusSeeOther {
			t.Fatalf("sign out: status %d", w.Code)
		}
		var cleared bool
		for _, c := range w.Result().Cookies() {
			cleared = cleared || c.Name == opCookieName && c.MaxAge < 0
		}
		if !cleared {
			t.Errorf("sign out did not remove the operator cookie: %v", w.Result().Cookies())
		}
	})
	t.Run("CookieBoundToTokenAndTime", func(t *testing.T) {
		e := newEnv(t, withAdmin)
		p := signIn(t, e, newPersona(1))
		other := newEnv(t, func(o *envOptions) { o.config.AdminToken = adminToken + "-rotated" })
		if css := other.do(p.request(httptest.NewRequest(http.MethodGet, "/me.css", nil))).Body.String(); strings.Contains(css, ".msg { --delete") {
			t.Errorf("an operator cookie outlived a change of the admin token")
		}
		ops := newOperators(testSecret, adminToken)
		ops.now = func() time.Time { return time.Now().Add(opSessionLen + time.Minute) }
		r := p.request(httptest.NewRequest(http.MethodGet, "/me.css", nil))
		r = r.WithContext(withPerson(r.Context(), signer{secret: testSecret}.person(bytes.Repeat([]byte{1}, idLen), "")))
		if ops.is(r) {
			t.Errorf("an operator cookie is still good after %v", opSessionLen)
		}
		ops.now = time.Now
		if !ops.is(r) {
			t.Errorf("the control failed: a fresh operator cookie is not good")
		}
	})
}

// Deletions share the client's post rate: each stores a record.
func TestDeleteRateLimited(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.config.PostRate, o.config.PostBurst = 0.001, 3 })
	alice := newPersona(1)
	for range 3 {
		if _, err := e.hub.Post(t.Context(), "lobby", alice.author(), "words"); err != nil {
			t.Fatal(err)
		}
	}
	var codes []int
	// One post through HTTP and three deletions: the burst of 3 is spent
	// by the post and the first two deletions.
	codes = append(codes, e.do(alice.request(postRequest("lobby", messageForm("more"), false))).Code)
	for seq := 1; seq <= 3; seq++ {
		w := e.do(alice.request(deleteRequest(fmt.Sprintf("/chat/lobby/messages/%d/delete", seq), false)))
		codes = append(codes, w.Code)
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if want := []int{303, 303, 303, 429}; !slices.Equal(codes, want) {
		t.Errorf("statuses %v, want %v", codes, want)
	}
	msgs := e.recent(t, "lobby", 10)
	if len(msgs) != 6 || msgs[2].Deleted || msgs[2].Text != "words" {
		t.Errorf("after a refused deletion the room holds %d messages (third %+v), want 6 (4 posted, 2 records) and the third untouched", len(msgs), msgs[2])
	}
}
