package yardstick

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestServerAnswers: the answers that are not a stream, before and after
// Close.
func TestServerAnswers(t *testing.T) {
	s := NewServer()
	post := func(path, message string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(url.Values{"message": {message}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	for _, tc := range []struct {
		name             string
		w                *httptest.ResponseRecorder
		status           int
		inBodyOrLocation string
	}{
		{"Post", post("/chat/lobby/messages", "hello"), http.StatusSeeOther, "/chat/lobby/"},
		{"PostEmpty", post("/chat/lobby/messages", "  "), http.StatusBadRequest, "message is empty"},
		{"PostBadRoom", post("/chat/a%20b/messages", "hello"), http.StatusBadRequest, "room name"},
		{"EventsBadRoom", get("/chat/a%20b/events"), http.StatusBadRequest, "room name"},
		{"Health", get("/healthz"), http.StatusOK, "ok"},
		{"Metrics", get("/metrics"), http.StatusOK, "go_goroutines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.w.Body.String() + tc.w.Header().Get("Location")
			if tc.w.Code != tc.status || !strings.Contains(got, tc.inBodyOrLocation) {
				t.Errorf("status %d, body and Location %q; want %d and %q", tc.w.Code, got, tc.status, tc.inBodyOrLocation)
			}
		})
	}
	if n := len(s.rooms); n != 1 {
		t.Errorf("%d rooms after one good post, want 1", n)
	}
	s.Close()
	s.Close() // a second Close is harmless
	if w := get("/healthz"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("healthz after Close: %d, want 503", w.Code)
	}
	if w := get("/chat/other/events"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("a new room's events after Close: %d, want 503", w.Code)
	}
}
