package handlers

import (
	"net/http"
	"strings"
	"testing"
)

// The log page is the room's recent history as a page that reloads itself,
// with no scripts; the room page frames it inside <noscript> only.
func TestLogPage(t *testing.T) {
	e := newEnv(t)
	e.post(t, "lobby", "first")
	e.post(t, "lobby", "<b>second</b>")

	w := e.get("/chat/lobby/log")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /chat/lobby/log: status %d, want 200; body %.300q", w.Code, w.Body.String())
	}
	body := w.Body.String()
	checkPageHygiene(t, body)
	if n := len(scriptTag.FindAllString(body, -1)); n != 0 {
		t.Errorf("the log page loads %d scripts, want none", n)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<html lang="en">`,
		"first",
		"&lt;b&gt;second&lt;/b&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the log page lacks %q", want)
		}
	}
	if i, j := strings.Index(body, "first"), strings.Index(body, "second"); i > j {
		t.Errorf("the log page lists the newest message first, want oldest first as in the live log")
	}
	h := w.Header()
	if got := h.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache: each reload must ask again", got)
	}
	// The room page may frame it; other sites may not frame any page.
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("Content-Security-Policy %q, want frame-ancestors 'self'", csp)
	}
	if got := h.Get("X-Frame-Options"); got != "SAMEORIGIN" {
		t.Errorf("X-Frame-Options %q, want SAMEORIGIN", got)
	}

	t.Run("BadRoom", func(t *testing.T) {
		if w := e.get("/chat/a%20b/log"); w.Code != http.StatusBadRequest {
			t.Errorf("GET /chat/a%%20b/log: status %d, want 400", w.Code)
		}
	})
	t.Run("RoomPageFramesIt", func(t *testing.T) {
		body := e.get("/chat/lobby/").Body.String()
		for _, want := range []string{
			`<noscript><iframe class="log-frame" src="/chat/lobby/log" title="Messages"></iframe></noscript>`,
			`<noscript><link rel="stylesheet" href="/static/noscript.css?v=`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("the room page lacks %q", want)
			}
		}
	})
	t.Run("StylesheetServed", func(t *testing.T) {
		w := e.get("/static/noscript.css")
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), ".log-scroll") {
			t.Errorf("GET /static/noscript.css: status %d, body %.100q", w.Code, w.Body.String())
		}
	})
}
