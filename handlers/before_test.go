package handlers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// msgIDs finds the message elements of a page, in order.
var msgIDs = regexp.MustCompile(`<li id="(msg-\d+)"`)

func pageMsgs(body string) []string {
	var out []string
	for _, m := range msgIDs.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func msgRange(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("msg-%d", i))
	}
	return out
}

func TestLoadEarlier(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.config.History = 5 })
	for i := 1; i <= 12; i++ {
		e.post(t, "lobby", fmt.Sprintf("message %d", i))
	}
	htmxGet := func(target string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header.Set("HX-Request", "true")
		return e.do(r)
	}
	for _, tc := range []struct {
		name    string
		w       *httptest.ResponseRecorder
		msgs    []string
		earlier string // the Load earlier link's page; "" for none
		oldest  bool   // says this is the oldest message kept
		page    bool   // a whole page
	}{
		{"Room", e.get("/chat/lobby/"), msgRange(8, 12), "/chat/lobby/?before=8", false, true},
		{"LogFrame", e.liveLogUntil(t, "/chat/lobby/log", `id="msg-12"`), msgRange(8, 12), "/chat/lobby/?before=8", false, true},
		{"EarlierPage", e.get("/chat/lobby/?before=8"), msgRange(3, 7), "/chat/lobby/?before=3", false, true},
		{"EarlierFragment", htmxGet("/chat/lobby/?before=8"), msgRange(3, 7), "/chat/lobby/?before=3", false, false},
		{"OldestPage", e.get("/chat/lobby/?before=3"), msgRange(1, 2), "", true, true},
		{"OldestFragment", htmxGet("/chat/lobby/?before=3"), msgRange(1, 2), "", true, false},
		{"BeforeFirst", e.get("/chat/lobby/?before=1"), nil, "", true, true},
		{"BeyondNewest", e.get("/chat/lobby/?before=1000"), msgRange(8, 12), "/chat/lobby/?before=8", false, true},
		{"SmallRoom", e.get("/chat/quiet/"), nil, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.w.Body.String()
			if tc.w.Code != http.StatusOK {
				t.Fatalf("status %d; body %.300q", tc.w.Code, body)
			}
			if got := pageMsgs(body); strings.Join(got, " ") != strings.Join(tc.msgs, " ") {
				t.Errorf("messages %q, want %q", got, tc.msgs)
			}
			link := `<li id="earlier" class="earlier"><a href="` + tc.earlier + `" hx-get="` + tc.earlier + `" hx-target="#log" hx-swap="upsert">Load earlier messages</a></li>`
			if has := strings.Contains(body, link); has != (tc.earlier != "") {
				t.Errorf("Load earlier link to %q: %v, want %v; body %.2000s", tc.earlier, has, tc.earlier != "", body)
			}
			if has := strings.Contains(body, "This is the oldest message kept."); has != tc.oldest {
				t.Errorf("oldest note: %v, want %v", has, tc.oldest)
			}
			if has := strings.Contains(body, "<html"); has != tc.page {
				t.Errorf("a whole page: %v, want %v", has, tc.page)
			}
			if strings.Contains(tc.name, "Earlier") || strings.Contains(tc.name, "Oldest") {
				if strings.Contains(body, "hx-sse:connect") {
					t.Errorf("a page of history opens a stream")
				}
				if tc.page && !strings.Contains(body, `<a href="/chat/lobby/">Back to the newest messages</a>`) {
					t.Errorf("a page of history has no link back to the newest")
				}
				if got := tc.w.Header().Values("Vary"); !strings.Contains(strings.Join(got, ","), "HX-Request") {
					t.Errorf("Vary %q lacks HX-Request", got)
				}
			}
		})
	}
}

// A deleted message is a placeholder on every page, its record is not
// shown, and the link's seq counts the record.
func TestPagesShowPlaceholders(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.config.History = 3 })
	m := e.post(t, "lobby", "to be deleted")
	e.post(t, "lobby", "kept")
	if _, err := e.hub.Delete(t.Context(), "lobby", m.Seq, tester, false); err != nil {
		t.Fatal(err)
	}
	e.post(t, "lobby", "after")
	for _, target := range []string{"/chat/lobby/", "/chat/lobby/log", "/chat/lobby/?before=5"} {
		var body string
		if target == "/chat/lobby/log" {
			body = e.liveLogUntil(t, target, `id="msg-4"`).Body.String()
		} else {
			body = e.get(target).Body.String()
		}
		if strings.Contains(body, "to be deleted") {
			t.Errorf("%s shows the deleted text", target)
		}
		// The 3 before seq 5 are seqs 2..4, the record among them: the
		// page shows 2 and 4, and pages back from 2.
		if got, want := strings.Join(pageMsgs(body), " "), "msg-2 msg-4"; got != want {
			t.Errorf("%s: messages %q, want %q (the record, 3, not shown)", target, got, want)
		}
		if !strings.Contains(body, `href="/chat/lobby/?before=2"`) {
			t.Errorf("%s: no link back from seq 2", target)
		}
	}
	if body := e.get("/chat/lobby/?before=2").Body.String(); !strings.Contains(body, `<li id="msg-1" class="msg deleted"><span class="text">Message deleted</span></li>`) {
		t.Errorf("the earlier page lacks the placeholder: %.1500s", body)
	}
}
