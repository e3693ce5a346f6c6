package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hxchat/hxchat/chat"
)

// downStore is a store whose server can be switched off.
type downStore struct {
	*chat.MemoryStore
	down atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (s *downStore) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	if s.down.Load() {
		return chat.Message{}, errors.Join(chat.ErrUnavailable, errDown)
	}
	return s.MemoryStore.Append(ctx, m)
}

func (s *downStore) Ping(context.Context) error {
	if s.down.Load() {
		return errors.Join(chat.ErrUnavailable, errDown)
	}
	return nil
}

func TestStoreOutage(t *testing.T) {
	var ds *downStore
	e := newEnv(t, func(o *envOptions) {
		o.store = func(m *chat.MemoryStore) chat.Store {
			ds = &downStore{MemoryStore: m}
			return ds
		}
	})
	// The pinger is the same store; wire it after newEnv made it.
	e2 := newEnv(t, func(o *envOptions) {
		o.store = func(*chat.MemoryStore) chat.Store { return ds }
		o.health = ds
	})
	ds.down.Store(true)

	for _, htmx := range []bool{false, true} {
		req := newPost("/chat/lobby/messages", url.Values{"message": {"hello"}})
		if htmx {
			req.Header.Set("HX-Request", "true")
		}
		rec := e.do(req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("htmx=%v: POST while the store is down: status %d, want 503", htmx, rec.Code)
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("htmx=%v: 503 without Retry-After", htmx)
		}
		body := rec.Body.String()
		if !strings.Contains(body, "unavailable") || strings.Contains(body, "connection refused") {
			t.Errorf("htmx=%v: body should say the chat is unavailable without internals:\n%s", htmx, body)
		}
	}
	if rec := e2.get("/healthz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz while the store is down: %d, want 503", rec.Code)
	}
	if msgs, _ := ds.Recent(t.Context(), "lobby", 10); len(msgs) != 0 {
		t.Fatalf("stored %d messages while down", len(msgs))
	}

	ds.down.Store(false)
	if rec := e2.get("/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("/healthz after recovery: %d, want 200", rec.Code)
	}
	if rec := e.do(newPost("/chat/lobby/messages", url.Values{"message": {"hello"}})); rec.Code != http.StatusSeeOther {
		t.Fatalf("POST after recovery: %d, want 303", rec.Code)
	}
}

func newPost(target string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func TestMetricsCountStoreErrorsAndLatency(t *testing.T) {
	var ds *downStore
	e := newEnv(t, func(o *envOptions) {
		o.store = func(m *chat.MemoryStore) chat.Store {
			ds = &downStore{MemoryStore: m}
			return ds
		}
	})
	e.do(newPost("/chat/lobby/messages", url.Values{"message": {"ok"}}))
	ds.down.Store(true)
	e.do(newPost("/chat/lobby/messages", url.Values{"message": {"lost"}}))
	body := e.get("/metrics").Body.String()
	for _, want := range []string{
		`hxchat_store_errors_total{op="append"} 1`,
		"hxchat_post_duration_seconds_count 2",
		"hxchat_fanout_latency_seconds",
		"hxchat_messages_posted_total 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "lobby") {
		t.Error("/metrics names a room: labels must not carry room names")
	}
}

// A poster that leaves before its message is stored is neither a store
// error nor a bad message: nothing is counted, logged or stored.
func TestPostAbandonedIsNoStoreError(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e.do(newPost("/chat/lobby/messages", url.Values{"message": {"gone"}}).WithContext(ctx))
	body := e.get("/metrics").Body.String()
	for _, unwanted := range []string{`hxchat_store_errors_total{op="append"}`, `reason="bad_message"`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("/metrics counts an abandoned post: %q", unwanted)
		}
	}
	if got := e.recent(t, "lobby", 10); len(got) != 0 {
		t.Errorf("%d messages stored from an abandoned post, want 0", len(got))
	}
}
