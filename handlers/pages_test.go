package handlers

import (
	"context"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/hxchat/hxchat/static"
)

func TestRoutes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		method string
		target string
		want   int
	}{
		{"Index", http.MethodGet, "/", http.StatusOK},
		{"RoomQuery", http.MethodGet, "/chat/?room=lobby", http.StatusSeeOther},
		{"Room", http.MethodGet, "/chat/lobby/", http.StatusOK},
		{"Post", http.MethodPost, "/chat/lobby/messages", http.StatusSeeOther},
		{"Health", http.MethodGet, "/healthz", http.StatusOK},
		{"Metrics", http.MethodGet, "/metrics", http.StatusOK},
		{"Static", http.MethodGet, "/static/app.css", http.StatusOK},
		{"UnknownPath", http.MethodGet, "/nope", http.StatusNotFound},
		{"UnknownUnderRoom", http.MethodGet, "/chat/lobby/nope", http.StatusNotFound},
		{"UnknownStatic", http.MethodGet, "/static/nope.css", http.StatusNotFound},
		{"PostIndex", http.MethodPost, "/", http.StatusMethodNotAllowed},
		{"DeleteRoom", http.MethodDelete, "/chat/lobby/", http.StatusMethodNotAllowed},
		{"GetMessages", http.MethodGet, "/chat/lobby/messages", http.StatusMethodNotAllowed},
		{"PostEvents", http.MethodPost, "/chat/lobby/events", http.StatusMethodNotAllowed},
		{"PutHealth", http.MethodPut, "/healthz", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(messageForm("hello from " + tt.name))
			} else {
				body = strings.NewReader("")
			}
			r := httptest.NewRequest(tt.method, tt.target, body)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := e.do(r)
			if got := w.Code; got != tt.want {
				t.Errorf("%s %s: status %d, want %d; body %.300q", tt.method, tt.target, got, tt.want, w.Body.String())
			}
			// Error pages are HTML pages (the file server's own 404 aside).
			if (tt.want == http.StatusNotFound || tt.want == http.StatusMethodNotAllowed) && !strings.HasPrefix(tt.target, "/static/") {
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("error page Content-Type %q, want text/html", ct)
				}
				if _, ok := alertText(w.Body.String()); !ok {
					t.Errorf("error page has no role=alert reason: %.300q", w.Body.String())
				}
			}
		})
	}
}

// RFC 9110 section 9.1: general-purpose servers MUST support HEAD wherever
// they support GET.
func TestHeadIsServed(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ name, target string }{
		{"Index", "/"},
		{"Room", "/chat/lobby/"},
		{"Health", "/healthz"},
		{"Static", "/static/app.css"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(httptest.NewRequest(http.MethodHead, tt.target, nil))
			if got, want := w.Code, http.StatusOK; got != want {
				t.Errorf("HEAD %s: status %d, want %d", tt.target, got, want)
			}
		})
	}
}

// A HEAD of the stream answers at once instead of streaming a body nobody
// reads.
func TestHeadEventsDoesNotStream(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodHead, "/chat/lobby/events?after=0", nil)
	w := httptest.NewRecorder()
	waitFor(t, 2*time.Second, "HEAD /chat/lobby/events", func() { e.handler.ServeHTTP(w, r) })
	if got := w.Code; got != http.StatusOK && got != http.StatusMethodNotAllowed {
		t.Errorf("status %d, want 200 or 405", got)
	}
}

func TestIndex(t *testing.T) {
	e := newEnv(t)
	w := e.get("/")
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/html; charset=utf-8", ct)
	}
	body := w.Body.String()
	for _, want := range []string{
		"What chat room would you like to enter?",
		`method="get"`,
		`action="/chat/"`,
		`name="room"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	checkPageHygiene(t, body)
}

func TestRoomQuery(t *testing.T) {
	e := newEnv(t)
	t.Run("Redirects", func(t *testing.T) {
		tests := []struct {
			name, room, want string
		}{
			{"Lobby", "lobby", "/chat/lobby/"},
			{"Dashes", "team-7", "/chat/team-7/"},
			{"Trimmed", "  lobby ", "/chat/lobby/"},
			{"Korean", "한국어", "/chat/%ED%95%9C%EA%B5%AD%EC%96%B4/"},
			// Typed or pasted decomposed, the name is composed (NFC): the
			// one spelling a room has.
			{"Decomposed", "cafe\u0301", "/chat/caf%C3%A9/"},
			{"DecomposedKorean", "\u1112\u1161\u11AB\u1100\u116E\u11A8\u110B\u1165", "/chat/%ED%95%9C%EA%B5%AD%EC%96%B4/"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				w := e.get("/chat/?room=" + url.QueryEscape(tt.room))
				if got, want := w.Code, http.StatusSeeOther; got != want {
					t.Fatalf("status %d, want %d", got, want)
				}
				if got := w.Header().Get("Location"); got != tt.want {
					t.Errorf("Location %q, want %q", got, tt.want)
				}
				// The target is the room's page.
				w = e.get(w.Header().Get("Location"))
				if got, want := w.Code, http.StatusOK; got != want {
					t.Fatalf("following the redirect: status %d, want %d", got, want)
				}
				if want := "<h1>" + html.EscapeString(norm.NFC.String(strings.TrimSpace(tt.room))) + "</h1>"; !strings.Contains(w.Body.String(), want) {
					t.Errorf("room page lacks %q", want)
				}
			})
		}
	})
	t.Run("BadNames", func(t *testing.T) {
		tests := []struct {
			name, room, reason string
		}{
			{"Empty", "", "room name is empty"},
			{"Spaces", "   ", "room name is empty"},
			{"Space", "a b", "room name contains a space"},
			{"DotDot", "../x", "room name contains '/'"},
			{"TooLong", strings.Repeat("a", 65), "room name is 65 characters long; the limit is 64"},
			{"Slash", "a/b", "room name contains '/'"},
			{"NUL", "a\x00b", `room name contains '\x00'`},
			{"RightToLeftOverride", "a\u202eb", `room name contains '\u202e'`},
			{"Reserved", "..", `room name ".." is reserved`},
			{"Script", "<script>alert(1)</script>", "room name contains '<'"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				w := e.get("/chat/?room=" + url.QueryEscape(tt.room))
				if got, want := w.Code, http.StatusBadRequest; got != want {
					t.Fatalf("status %d, want %d; Location %q", got, want, w.Header().Get("Location"))
				}
				body := w.Body.String()
				got, ok := alertText(body)
				if !ok {
					t.Fatalf("no role=alert element in %.500q", body)
				}
				if !strings.Contains(got, tt.reason) {
					t.Errorf("reason %q, want it to contain %q", got, tt.reason)
				}
				if strings.Contains(body, "<script>alert") {
					t.Errorf("page echoes the name raw: %.500q", body)
				}
				// The index form is shown again to fix the name.
				if !strings.Contains(body, `name="room"`) {
					t.Errorf("400 page has no room form")
				}
				checkPageHygiene(t, body)
			})
		}
	})
}

func TestRoomPage(t *testing.T) {
	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t)
		w := e.get("/chat/lobby/")
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		if want := `hx-sse:connect="/chat/lobby/events?after=0"`; !strings.Contains(w.Body.String(), want) {
			t.Errorf("room page lacks %s", want)
		}
	})
	t.Run("ThreeMessages", func(t *testing.T) {
		e := newEnv(t)
		for i := range 3 {
			e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
		}
		e.post(t, "other", "not in lobby")
		w := e.get("/chat/lobby/")
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		body := w.Body.String()
		ul := logElem.FindString(body)
		if ul == "" {
			t.Fatalf("no <ul id=\"log\"> in %.500q", body)
		}
		for _, want := range []string{`hx-sse:connect="/chat/lobby/events?after=3"`, `hx-swap="upsert"`} {
			if !strings.Contains(ul, want) {
				t.Errorf("log element %q lacks %s", ul, want)
			}
		}
		form := sendForm.FindString(body)
		if form == "" {
			t.Fatalf("no message form in %.500q", body)
		}
		for _, want := range []string{`method="post"`, `action="/chat/lobby/messages"`, `hx-post="/chat/lobby/messages"`, `name="message"`, "autofocus"} {
			if !strings.Contains(form, want) {
				t.Errorf("form lacks %s: %q", want, form)
			}
		}
		for i := 1; i <= 3; i++ {
			if want := fmt.Sprintf(`id="msg-%d"`, i); !strings.Contains(body, want) {
				t.Errorf("history lacks %s", want)
			}
			if want := fmt.Sprintf("message %d", i); !strings.Contains(body, want) {
				t.Errorf("history lacks %q", want)
			}
		}
		if strings.Contains(body, "not in lobby") {
			t.Errorf("another room's message is shown")
		}
		checkPageHygiene(t, body)
	})
	t.Run("HistoryLimit", func(t *testing.T) {
		e := newEnv(t)
		for i := range 60 {
			e.post(t, "lobby", fmt.Sprintf("message %d", i+1))
		}
		w := e.get("/chat/lobby/")
		body := w.Body.String()
		if got := strings.Count(body, `class="msg"`); got != 50 {
			t.Errorf("%d messages shown, want 50 (Config.History)", got)
		}
		for _, seq := range []int{1, 10} {
			if s := fmt.Sprintf(`id="msg-%d"`, seq); strings.Contains(body, s) {
				t.Errorf("old message %s shown", s)
			}
		}
		for _, seq := range []int{11, 60} {
			if s := fmt.Sprintf(`id="msg-%d"`, seq); !strings.Contains(body, s) {
				t.Errorf("recent message %s missing", s)
			}
		}
		if want := `hx-sse:connect="/chat/lobby/events?after=60"`; !strings.Contains(body, want) {
			t.Errorf("room page lacks %s", want)
		}
	})
	t.Run("Korean", func(t *testing.T) {
		e := newEnv(t)
		w := e.get("/chat/%ED%95%9C%EA%B5%AD%EC%96%B4/")
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		if want := `action="/chat/%ED%95%9C%EA%B5%AD%EC%96%B4/messages"`; !strings.Contains(w.Body.String(), want) {
			t.Errorf("room page lacks %s", want)
		}
	})
}

func TestRoomPageBadNames(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, reason string
	}{
		{"EscapedDotDot", "/chat/%2E%2E/", `room name ".." is reserved`},
		{"EscapedDot", "/chat/%2E/", `room name "." is reserved`},
		{"EscapedSlash", "/chat/a%2Fb/", "room name contains '/'"},
		{"Space", "/chat/a%20b/", "room name contains a space"},
		{"NUL", "/chat/a%00b/", `room name contains '\x00'`},
		{"RightToLeftOverride", "/chat/a%E2%80%AEb/", `room name contains '\u202e'`},
		{"TooLong", "/chat/" + strings.Repeat("a", 65) + "/", "room name is 65 characters long; the limit is 64"},
		{"Script", "/chat/%3Cscript%3Ealert(1)%3C%2Fscript%3E/", "room name contains '<'"},
		// %25 is '%': the name is "a%41", which has a '%' in it. Decoding
		// it a second time would turn it into the room "aA".
		{"EscapedPercent", "/chat/a%2541/", "room name contains '%'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, target := range []string{tt.path, tt.path + "events"} {
				w := e.get(target)
				if got, want := w.Code, http.StatusBadRequest; got != want {
					t.Errorf("GET %s: status %d, want %d", target, got, want)
					continue
				}
				body := w.Body.String()
				if !strings.Contains(html.UnescapeString(body), tt.reason) {
					t.Errorf("GET %s: body %.300q lacks the reason %q", target, body, tt.reason)
				}
				if strings.Contains(body, "<script>alert") {
					t.Errorf("GET %s: body echoes the name raw: %.300q", target, body)
				}
			}
			w := e.do(postRequest(strings.Trim(strings.TrimPrefix(tt.path, "/chat/"), "/"), messageForm("hi"), false))
			if got, want := w.Code, http.StatusBadRequest; got != want {
				t.Errorf("POST: status %d, want %d", got, want)
			}
			if got := e.recent(t, "aA", 10); len(got) != 0 {
				t.Errorf("stored %d messages in room aA", len(got))
			}
		})
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	w := e.get("/healthz")
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
	if got, want := strings.TrimSpace(w.Body.String()), "ok"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	if w := e.do(postRequest("lobby", messageForm("hi"), false)); w.Code != http.StatusSeeOther {
		t.Fatalf("POST: status %d, want 303", w.Code)
	}
	if w := e.get("/chat/?room=a+b"); w.Code != http.StatusBadRequest {
		t.Fatalf("bad room: status %d, want 400", w.Code)
	}
	w := e.get("/metrics")
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
	body := w.Body.String()
	for _, want := range []string{
		"\nhxchat_messages_posted_total 1\n",
		"\nhxchat_streams_open 0\n",
		`hxchat_rejected_requests_total{reason="bad_room"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestStatic(t *testing.T) {
	e := newEnv(t)
	css, err := fs.ReadFile(static.FS(), "app.css")
	if err != nil {
		t.Fatal(err)
	}
	version := static.Version("app.css")
	if version == "" {
		t.Fatal(`static.Version("app.css") is empty`)
	}
	t.Run("Versioned", func(t *testing.T) {
		w := e.get("/static/app.css?v=" + version)
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=") {
			t.Errorf("Cache-Control %q, want a long immutable cache", cc)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
			t.Errorf("Content-Type %q, want text/css", ct)
		}
		if w.Body.String() != string(css) {
			t.Errorf("body is not the embedded app.css")
		}
	})
	for _, tt := range []struct{ name, target string }{
		{"Unversioned", "/static/app.css"},
		{"StaleVersion", "/static/app.css?v=000000000000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get(tt.target)
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("status %d, want %d", got, want)
			}
			if got, want := w.Header().Get("Cache-Control"), "no-cache"; got != want {
				t.Errorf("Cache-Control %q, want %q", got, want)
			}
		})
	}
	t.Run("Scripts", func(t *testing.T) {
		for _, name := range static.Scripts {
			w := e.get(static.URL(name))
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("%s: status %d, want %d", name, got, want)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("%s: Content-Type %q, want text/javascript", name, ct)
			}
			if w.Body.Len() < 100 {
				t.Errorf("%s: %d bytes, want the htmx file (run make build)", name, w.Body.Len())
			}
		}
	})
	t.Run("PlainHtmx", func(t *testing.T) {
		w := e.get("/static/dist/htmx.min.js")
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
			t.Errorf("Content-Type %q, want JavaScript", ct)
		}
		if got, want := w.Header().Get("X-Content-Type-Options"), "nosniff"; got != want {
			t.Errorf("X-Content-Type-Options %q, want %q", got, want)
		}
	})
	for _, tt := range []struct{ name, target string }{
		{"Root", "/static/"},
		{"DistListing", "/static/dist/"},
		{"DotFile", "/static/dist/.gitkeep"},
		{"Missing", "/static/dist/nope.js"},
		{"Escape", "/static/../go.mod"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get(tt.target)
			if got, want := w.Code, http.StatusNotFound; got != want {
				t.Errorf("GET %s: status %d, want %d; body %.200q", tt.target, got, want, w.Body.String())
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	e.post(t, "lobby", "hello")
	cross := httptest.NewRequest(http.MethodPost, "/chat/lobby/messages", strings.NewReader(messageForm("x")))
	cross.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	tests := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"Index", httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK},
		{"Room", httptest.NewRequest(http.MethodGet, "/chat/lobby/", nil), http.StatusOK},
		{"BadRoomQuery", httptest.NewRequest(http.MethodGet, "/chat/?room=a+b", nil), http.StatusBadRequest},
		{"BadRoomPath", httptest.NewRequest(http.MethodGet, "/chat/a%20b/", nil), http.StatusBadRequest},
		{"NotFound", httptest.NewRequest(http.MethodGet, "/nope", nil), http.StatusNotFound},
		{"MethodNotAllowed", httptest.NewRequest(http.MethodDelete, "/", nil), http.StatusMethodNotAllowed},
		{"BadPost", postRequest("lobby", messageForm(""), false), http.StatusBadRequest},
		{"BadPostHtmx", postRequest("lobby", messageForm(""), true), http.StatusBadRequest},
		{"CrossSite", cross, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(tt.req)
			if got := w.Code; got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
			h := w.Header()
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q lacks default-src 'self'", csp)
			}
			if got, want := h.Get("X-Content-Type-Options"), "nosniff"; got != want {
				t.Errorf("X-Content-Type-Options %q, want %q", got, want)
			}
			body := w.Body.String()
			checkPageHygiene(t, body)
			if strings.Contains(body, "<html") && len(scriptTag.FindAllString(body, -1)) != len(static.Scripts) {
				t.Errorf("page loads %d scripts, want the %d htmx files", len(scriptTag.FindAllString(body, -1)), len(static.Scripts))
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	const evil = "<script>alert(1)</script>"
	const escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
	t.Run("RoomPage", func(t *testing.T) {
		e := newEnv(t)
		e.post(t, "lobby", evil)
		body := e.get("/chat/lobby/").Body.String()
		if strings.Contains(body, evil) || strings.Contains(body, "<script>alert") {
			t.Errorf("room page outputs the message raw")
		}
		if !strings.Contains(body, escaped) {
			t.Errorf("room page lacks the escaped message %q", escaped)
		}
	})
	t.Run("RefusedMessageEchoed", func(t *testing.T) {
		// A refused message is put back in the form: escaped.
		for _, htmx := range []bool{true, false} {
			e := newEnv(t)
			w := e.do(postRequest("lobby", messageForm(evil+"\x00"), htmx))
			if got, want := w.Code, http.StatusBadRequest; got != want {
				t.Fatalf("htmx=%v: status %d, want %d", htmx, got, want)
			}
			body := w.Body.String()
			if strings.Contains(body, "<script>alert") {
				t.Errorf("htmx=%v: form echoes the message raw: %.500q", htmx, body)
			}
			m := inputValue.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("htmx=%v: no message input with a value", htmx)
			}
			if got, want := html.UnescapeString(m[1]), evil+"\x00"; got != want {
				t.Errorf("htmx=%v: input value %q, want %q", htmx, got, want)
			}
		}
	})
	t.Run("HtmxFragment", func(t *testing.T) {
		e := newEnv(t)
		w := e.do(postRequest("lobby", messageForm(evil), true))
		if got, want := w.Code, http.StatusOK; got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		if strings.Contains(w.Body.String(), "<script>alert") {
			t.Errorf("fragment outputs the message raw")
		}
		if got := e.recent(t, "lobby", 1); len(got) != 1 || got[0].Text != evil {
			t.Errorf("stored %+v, want the text as sent", got)
		}
	})
	t.Run("Stream", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		rd := openOK(t, ts, "/chat/lobby/events?after=0", nil)
		postHTTP(t, ts, "lobby", evil)
		ev := rd.nextMessage(t)
		if strings.Contains(ev.data(), "<script>alert") {
			t.Errorf("event data outputs the message raw: %q", ev.data())
		}
		if !strings.Contains(ev.data(), escaped) {
			t.Errorf("event data %q lacks %q", ev.data(), escaped)
		}
	})
}
