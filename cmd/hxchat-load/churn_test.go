package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// scriptedMsg is message event seq carrying the tracker's text of message
// (poster 0, n), framed as the server frames it (two data lines).
func scriptedMsg(tr *tracker, seq, n int) string {
	return fmt.Sprintf("id: %d\ndata: <li id=\"msg-%d\" class=\"msg\" data-author=\"abc\"><span class=\"author\">guest</span>\ndata: <span class=\"text\">%s</span></li>\n\n",
		seq, seq, tr.text(0, n, time.Now()))
}

// waitSeq waits (at most 10 s) until s has received message seq.
func waitSeq(t *testing.T, s *subState, seq int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := s.lastSeq
		s.mu.Unlock()
		if got >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber did not get seq %d within 10s (has %d)", seq, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestChurnedStream closes a subscriber's stream on purpose, as the churn
// of -reconnect-rate does, while an event is half received, and checks the
// accounting across the resume: the stream resumes at once (the advertised
// retry is an hour) from the last whole event, the reconnect counts as
// churned and not as unplanned, and a server that resumes exactly after
// the cursor gives every message once, while one that repeats or skips a
// message is caught.
func TestChurnedStream(t *testing.T) {
	for _, c := range []struct {
		name                  string
		offset                int // the fake server resumes at cursor+1+offset
		deliveries, lost, dup int64
	}{
		{"resumes after the cursor", 0, 5, 0, 0},
		{"repeats the cursor", -1, 5, 0, 1},
		{"skips a message", 1, 4, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := newTracker("TEST")
			const last = 5 // the room holds seqs 1…5: message n = seq−1
			var mu sync.Mutex
			var lastIDs []string // Last-Event-ID of each connect
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
				first := len(lastIDs) == 1
				mu.Unlock()
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				if first {
					// Seqs 1 and 2 whole, 3 cut short by the churn.
					io.WriteString(w, "retry: 3600000\n\n"+scriptedMsg(tr, 1, 0)+scriptedMsg(tr, 2, 1)+
						"id: 3\ndata: <li id=\"msg-3\" class=\"msg\">")
				} else {
					cursor, ok := chat.ParseCursor(r.Header.Get("Last-Event-ID"))
					if !ok {
						http.Error(w, "bad cursor", http.StatusBadRequest)
						return
					}
					for seq := int(cursor.Seq) + 1 + c.offset; seq <= last; seq++ {
						io.WriteString(w, scriptedMsg(tr, seq, seq-1))
					}
				}
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer srv.Close()

			l := &loader{o: options{roomPrefix: "load", connectTimeout: 10 * time.Second}, bases: []string{srv.URL}, t: tr, dialer: &net.Dialer{}}
			s := &subState{room: 0}
			if s.churn() {
				t.Fatal("churn of a subscriber that never connected: true")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				l.subscriber(ctx, s, func(int64) {})
			}()
			waitSeq(t, s, 2)
			if !s.churn() {
				t.Fatal("churn of a subscriber with an open stream: false")
			}
			waitSeq(t, s, last)
			cancel()
			<-done
			if s.churn() {
				t.Error("churn after the subscriber stopped: true")
			}

			for n := range last {
				tr.acked(0, n, 0, s.connectedAt.Add(time.Millisecond))
			}
			expected, lost := tr.expectedAndLost([]*subState{s})
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"", "2"}; strings.Join(lastIDs, ",") != strings.Join(want, ",") {
				t.Errorf("Last-Event-ID of the connects = %q, want %q", lastIDs, want)
			}
			for _, g := range []struct {
				name      string
				got, want int64
			}{
				{"expected", expected, last},
				{"deliveries", int64(tr.latency.count()), c.deliveries},
				{"lost", lost, c.lost},
				{"duplicated", tr.duplicates.Load(), c.dup},
				{"out of order", tr.outOrder.Load(), 0},
				{"churned", tr.churned.Load(), 1},
				{"reconnects (unplanned)", tr.reconnects.Load(), 0},
				{"connected", tr.connected.Load(), 1},
				{"connect errors", tr.connectErrors.Load(), 0},
			} {
				if g.got != g.want {
					t.Errorf("%s = %d, want %d", g.name, g.got, g.want)
				}
			}
		})
	}
}

// TestChurner checks that the churner picks only subscribers whose stream
// is open, each once while it is being churned.
func TestChurner(t *testing.T) {
	subs := make([]*subState, 10)
	var closed [10]atomic.Int32
	for i := range subs {
		subs[i] = &subState{}
		if i%3 == 0 { // 0, 3, 6, 9 have an open stream
			subs[i].streamOpened(func() { closed[i].Add(1) })
		}
	}
	// 60 000 churns a minute over 10 subscribers: one a millisecond.
	l := &loader{o: options{reconnectRate: 6000}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.churner(ctx, subs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	total := func() (n int32) {
		for i := range closed {
			n += closed[i].Load()
		}
		return n
	}
	for total() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // some more ticks, with nothing left to churn
	cancel()
	<-done
	for i := range closed {
		want := int32(0)
		if i%3 == 0 {
			want = 1
		}
		if got := closed[i].Load(); got != want {
			t.Errorf("subscriber %d closed %d times, want %d", i, got, want)
		}
	}
	for i, s := range subs {
		if got, want := s.streamEnded(), i%3 == 0; got != want {
			t.Errorf("subscriber %d: streamEnded() = %v, want %v (churned)", i, got, want)
		}
	}
}

func TestChurnInterval(t *testing.T) {
	for _, c := range []struct {
		rate float64
		subs int
		want time.Duration
	}{
		{0.05, 1000, 1200 * time.Millisecond}, // the soak: 50 a minute
		{1.2, 100, 500 * time.Millisecond},    // the smoke test
		{1e6, 1e6, time.Millisecond},          // clamped
	} {
		if got := churnInterval(c.rate, c.subs); got != c.want {
			t.Errorf("churnInterval(%g, %d) = %v, want %v", c.rate, c.subs, got, c.want)
		}
	}
}

// TestStreamTLS reads a stream over https (HTTP/1.1 over TLS, as the
// streams are opened without net/http's client).
func TestStreamTLS(t *testing.T) {
	tr := newTracker("TEST")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "want HTTP/1.1 and Accept: text/event-stream", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, scriptedMsg(tr, 1, 0)+scriptedMsg(tr, 2, 1))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	l := &loader{o: options{roomPrefix: "load", connectTimeout: 10 * time.Second}, bases: []string{srv.URL}, t: tr,
		dialer: &net.Dialer{}, tlsConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	s := &subState{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.subscriber(ctx, s, func(int64) {})
	}()
	waitSeq(t, s, 2)
	cancel()
	<-done
	if d, e := int64(tr.latency.count()), tr.connectErrors.Load(); d != 2 || e != 0 {
		t.Errorf("deliveries %d, connect errors %d (last error %q): want 2 and 0", d, e, l.lastErr)
	}
}
