package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPost(t *testing.T) {
	tests := []struct {
		name string
		text string // as sent
		want string // as stored
	}{
		{"Hello", "hello", "hello"},
		{"Trimmed", "  padded \n", "padded"},
		{"Unicode", "héllo 한국어 🙂", "héllo 한국어 🙂"},
		{"Multiline", "a\r\nb", "a\nb"},
		{"MaxLength", strings.Repeat("é", 2000), strings.Repeat("é", 2000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("Plain", func(t *testing.T) {
				e := newEnv(t)
				w := e.do(postRequest("lobby", messageForm(tt.text), false))
				if got, want := w.Code, http.StatusSeeOther; got != want {
					t.Fatalf("status %d, want %d; body %.300q", got, want, w.Body.String())
				}
				if got, want := w.Header().Get("Location"), "/chat/lobby/"; got != want {
					t.Errorf("Location %q, want %q", got, want)
				}
				msgs := e.recent(t, "lobby", 10)
				if len(msgs) != 1 || msgs[0].Text != tt.want {
					t.Fatalf("stored %+v, want one message %q", msgs, tt.want)
				}
			})
			t.Run("Htmx", func(t *testing.T) {
				e := newEnv(t)
				w := e.do(postRequest("lobby", messageForm(tt.text), true))
				if got, want := w.Code, http.StatusOK; got != want {
					t.Fatalf("status %d, want %d; body %.300q", got, want, w.Body.String())
				}
				body := w.Body.String()
				if strings.Contains(body, "<html") {
					t.Errorf("htmx answer is a full page, want the form fragment")
				}
				if !strings.HasPrefix(strings.TrimSpace(body), "<form") || sendForm.FindString(body) == "" {
					t.Errorf("htmx answer is not the message form: %.300q", body)
				}
				m := inputValue.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("no message input with a value in %.300q", body)
				}
				if m[1] != "" {
					t.Errorf("input value %q, want empty", m[1])
				}
				if strings.Contains(body, "message-error") {
					t.Errorf("fresh form shows an error")
				}
				msgs := e.recent(t, "lobby", 10)
				if len(msgs) != 1 || msgs[0].Text != tt.want {
					t.Fatalf("stored %+v, want one message %q", msgs, tt.want)
				}
			})
		})
	}
}

func TestPostKorean(t *testing.T) {
	e := newEnv(t)
	w := e.do(postRequest("%ED%95%9C%EA%B5%AD%EC%96%B4", messageForm("hi"), false))
	if got, want := w.Code, http.StatusSeeOther; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
	if got, want := w.Header().Get("Location"), "/chat/%ED%95%9C%EA%B5%AD%EC%96%B4/"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if got := e.recent(t, "한국어", 10); len(got) != 1 {
		t.Errorf("stored %d messages in 한국어, want 1", len(got))
	}
}

func TestPostBadInput(t *testing.T) {
	tests := []struct {
		name   string
		body   string // form-encoded
		status int
		reason string
	}{
		{"Empty", "message=", http.StatusBadRequest, "message is empty"},
		{"NoField", "other=x", http.StatusBadRequest, "message is empty"},
		{"Whitespace", messageForm(" \t\r\n  "), http.StatusBadRequest, "message is empty"},
		{"TooLong", messageForm(strings.Repeat("a", 2001)), http.StatusBadRequest, "message is 2001 characters long; the limit is 2000"},
		{"InvalidUTF8", "message=%FF", http.StatusBadRequest, "message is not valid UTF-8"},
		{"NUL", "message=a%00b", http.StatusBadRequest, "message contains a control character (U+0000)"},
		{"Escape", "message=a%1Bb", http.StatusBadRequest, "message contains a control character (U+001B)"},
		{"BadEncoding", "message=%ZZ", http.StatusBadRequest, "could not be read"},
		{"OverMaxBody", messageForm(strings.Repeat("a", 40<<10)), http.StatusRequestEntityTooLarge, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []struct {
				name string
				htmx bool
			}{{"Plain", false}, {"Htmx", true}} {
				t.Run(mode.name, func(t *testing.T) {
					e := newEnv(t)
					w := e.do(postRequest("lobby", tt.body, mode.htmx))
					if got := w.Code; got != tt.status {
						t.Errorf("status %d, want %d", got, tt.status)
					}
					body := w.Body.String()
					reason, ok := messageError(body)
					if !ok {
						t.Fatalf("no message-error element inside the form: %.500q", body)
					}
					if !strings.Contains(reason, tt.reason) {
						t.Errorf("reason %q, want it to contain %q", reason, tt.reason)
					}
					if !strings.Contains(body, `aria-describedby="message-error"`) {
						t.Errorf("input is not described by the error")
					}
					isPage := strings.Contains(body, "<html")
					if mode.htmx {
						if isPage || !strings.HasPrefix(strings.TrimSpace(body), "<form") {
							t.Errorf("htmx answer is not a form fragment: %.300q", body)
						}
					} else {
						if !isPage || logElem.FindString(body) == "" {
							t.Errorf("plain answer is not the room page: %.300q", body)
						}
						checkPageHygiene(t, body)
					}
					if got := e.recent(t, "lobby", 10); len(got) != 0 {
						t.Errorf("stored %+v, want nothing", got)
					}
				})
			}
		})
	}
}

func TestCrossOrigin(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		htmx   bool
		want   int
	}{
		{"CrossSite", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, http.StatusForbidden},
		{"CrossSiteHtmx", map[string]string{"Sec-Fetch-Site": "cross-site"}, true, http.StatusForbidden},
		{"SameSite", map[string]string{"Sec-Fetch-Site": "same-site"}, false, http.StatusForbidden},
		{"ForeignOrigin", map[string]string{"Origin": "http://evil.example"}, false, http.StatusForbidden},
		{"SameOrigin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}, false, http.StatusSeeOther},
		{"SameOriginHtmx", map[string]string{"Sec-Fetch-Site": "same-origin"}, true, http.StatusOK},
		{"MatchingOrigin", map[string]string{"Origin": "http://example.com"}, false, http.StatusSeeOther},
		{"UserTyped", map[string]string{"Sec-Fetch-Site": "none"}, false, http.StatusSeeOther},
		{"NoBrowserHeaders", nil, false, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := postRequest("lobby", messageForm("hello"), tt.htmx)
			if r.Host != "example.com" {
				t.Fatalf("request Host %q, want example.com", r.Host)
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := e.do(r)
			if got := w.Code; got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
			stored := len(e.recent(t, "lobby", 10))
			if tt.want == http.StatusForbidden {
				if stored != 0 {
					t.Errorf("stored %d messages, want none", stored)
				}
				if reason, _ := alertText(w.Body.String()); !strings.Contains(reason, "another site") {
					t.Errorf("403 reason %q, want it to say the request came from another site", reason)
				}
			} else if stored != 1 {
				t.Errorf("stored %d messages, want 1", stored)
			}
		})
	}
	t.Run("CrossSiteGet", func(t *testing.T) {
		// Following a link from another site is fine.
		e := newEnv(t)
		r := httptest.NewRequest(http.MethodGet, "/chat/lobby/", nil)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		if got, want := e.do(r).Code, http.StatusOK; got != want {
			t.Errorf("status %d, want %d", got, want)
		}
	})
}
