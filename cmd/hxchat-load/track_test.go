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
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// TestScriptedStream runs one subscriber against a scripted stream with a
// presence event, a comment, a duplicate, a lost message, an out-of-order
// seq, a torn event and a dropped connection, and checks the counts. The
// messages say they were sent a second before they were written, so the
// latencies recorded must be a second and a little more.
func TestScriptedStream(t *testing.T) {
	tr := newTracker("TEST")
	msg := func(seq, n int) string {
		return fmt.Sprintf("id: %d\ndata: <li id=\"msg-%d\" class=\"msg\" data-author=\"abc\"><span class=\"author\">guest</span>\ndata: <span class=\"text\">%s</span></li>\n\n",
			seq, seq, tr.text(0, n, time.Now().Add(-time.Second)))
	}
	presence := func(seq int) string {
		return fmt.Sprintf("id: %d\ndata: <hx-partial hx-target=\"#presence\" hx-swap=\"innerHTML\">1 online</hx-partial>\n\n", seq)
	}

	var mu sync.Mutex
	var lastIDs []string // Last-Event-ID of each connect
	third := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/chat/load-0/events" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		switch n {
		case 1:
			io.WriteString(w, "retry: 10\n\n"+presence(0)+": ping\n\n"+
				msg(1, 0)+msg(2, 1)+msg(2, 1)+ // a duplicate
				msg(5, 4)+ // seqs 3 and 4 skipped: message n2 is lost
				msg(4, 3)+ // out of order
				presence(5)+ // repeats the last seq: not a duplicate
				"id: 99\ndata: torn") // dropped mid-event: discarded
		case 2:
			io.WriteString(w, msg(6, 5))
		default:
			w.(http.Flusher).Flush()
			close(third)
			<-r.Context().Done()
		}
	}))
	defer srv.Close()

	l := &loader{o: options{roomPrefix: "load", connectTimeout: 10 * time.Second}, bases: []string{srv.URL}, t: tr, dialer: &net.Dialer{}}
	s := &subState{room: 0}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.subscriber(ctx, s, func(int64) {})
	}()
	select {
	case <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber did not reconnect twice")
	}
	cancel()
	<-done

	for n := range 6 {
		tr.acked(0, n, 0, s.connectedAt.Add(time.Millisecond))
	}
	tr.acked(0, 6, 1, s.connectedAt.Add(time.Millisecond)) // another room: not expected here
	expected, lost := tr.expectedAndLost([]*subState{s})

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"", "5", "6"}; strings.Join(lastIDs, ",") != strings.Join(want, ",") {
		t.Errorf("Last-Event-ID of the connects = %q, want %q", lastIDs, want)
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"expected", expected, 6},
		{"deliveries", int64(tr.latency.count()), 5},
		{"lost", lost, 1},
		{"duplicated", tr.duplicates.Load(), 1},
		{"out of order", tr.outOrder.Load(), 1},
		{"reconnects", tr.reconnects.Load(), 2},
		{"churned", tr.churned.Load(), 0},
		{"connected", tr.connected.Load(), 1},
		{"connect errors", tr.connectErrors.Load(), 0},
		{"latencies", int64(tr.latency.count()), 5},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// Receive time minus send time: a second, plus the time the test took
	// (a few seconds at most even on a loaded machine).
	for _, c := range []struct {
		name string
		got  time.Duration
	}{
		{"p50 latency", tr.latency.quantile(0.5)},
		{"max latency", time.Duration(tr.latency.max.Load())},
	} {
		if c.got < time.Second || c.got >= 5*time.Second {
			t.Errorf("%s = %v, want 1s to 5s", c.name, c.got)
		}
	}
}

// TestOldRepeat checks that a message repeated with a seq older than the
// recent-seq window counts as a duplicate only, not also as out of order,
// while an older seq whose message is new is out of order.
func TestOldRepeat(t *testing.T) {
	tr := newTracker("TEST")
	s := &subState{}
	data := func(n int) []byte {
		return []byte(`<li class="msg"><span class="text">` + tr.text(0, n, time.Now()) + `</span></li>`)
	}
	const events = 40 // more than recentSeqs: seq 2 is forgotten
	for seq := 1; seq <= events; seq++ {
		tr.message(s, int64(seq), true, data(seq-1), time.Now())
	}
	tr.message(s, 2, true, data(1), time.Now())
	if d, o := tr.duplicates.Load(), tr.outOrder.Load(); d != 1 || o != 0 {
		t.Errorf("after seq 2 again: duplicated %d, out of order %d; want 1 and 0", d, o)
	}
	tr.message(s, 3, true, data(events), time.Now()) // an old seq, a new message
	if d, o := tr.duplicates.Load(), tr.outOrder.Load(); d != 1 || o != 1 {
		t.Errorf("after an old seq with a new message: duplicated %d, out of order %d; want 1 and 1", d, o)
	}
	if n := tr.latency.count(); n != events+1 {
		t.Errorf("deliveries = %d, want %d", n, events+1)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/50 || d > c.want/50 {
			t.Errorf("quantile(%v) = %v, want %v ±2%%", c.q, got, c.want)
		}
	}
	if got := time.Duration(h.max.Load()); got != time.Second {
		t.Errorf("max = %v", got)
	}
	for v := uint64(0); v < 1<<20; v += 997 {
		if i := histIndex(v); i >= histBuckets || histValue(i) > v+v/32+1 || histValue(i)+histValue(i)/32+1 < v {
			t.Fatalf("bucket of %d: index %d value %d", v, i, histValue(i))
		}
	}
	if i := histIndex(1<<63 - 1); i >= histBuckets {
		t.Fatalf("index of the largest value %d ≥ %d", i, histBuckets)
	}
}

func TestRefusesRemote(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-url", "http://127.0.0.1:8080"}, true},
		{[]string{"-url", "http://127.3.4.5:1"}, true},
		{[]string{"-url", "http://[::1]:8080/"}, true},
		{[]string{"-url", "http://localhost:8080"}, true},
		{[]string{"-url", "http://example.com"}, false},
		{[]string{"-url", "http://10.0.0.1:8080"}, false},
		{[]string{"-url", "http://10.0.0.1:8080", "-allow-remote"}, true},
		{[]string{"-url", "ftp://127.0.0.1"}, false},
		{[]string{"-rooms", "0"}, false},
		{[]string{"-reconnect-rate", "0.05", "-churn-pause", "1s", "-sample", "1s", "-settle", "0"}, true},
		{[]string{"-reconnect-rate", "-0.1"}, false},
		{[]string{"-reconnect-rate", "NaN"}, false},
		{[]string{"-churn-pause", "-1s"}, false},
		{[]string{"-sample", "0"}, false},
		{[]string{"-settle", "-1s"}, false},
	} {
		_, err := parseFlags(c.args, io.Discard)
		if (err == nil) != c.ok {
			t.Errorf("parseFlags(%q): err = %v, want ok %v", c.args, err, c.ok)
		}
	}
	err := run(context.Background(), []string{"-url", "http://192.0.2.1:8080"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-allow-remote") {
		t.Errorf("run against a remote target: %v, want a refusal naming -allow-remote", err)
	}
}

// parseSeq reads event ids as the server's chat.ParseCursor does.
func TestParseSeqAgreesWithParseCursor(t *testing.T) {
	for _, id := range []string{
		"0", "1", "42", "42-9f3a61c0", "7-a", "7-0123456789abcdef", "7-0123456789abcdefg",
		"9223372036854775807", "9223372036854775808", "00000000000000000001", "0000000000000000001",
		"", "-", "-1", "1-", "1--a", "1-A", "1-ab-c", "1 ", " 1", "1-ab\x00", "x", "1x", "12-é",
	} {
		seq, ok := parseSeq([]byte(id))
		c, wantOK := chat.ParseCursor(id)
		if ok != wantOK || (ok && seq != c.Seq) {
			t.Errorf("parseSeq(%q) = %d, %v; chat.ParseCursor: %d, %v", id, seq, ok, c.Seq, wantOK)
		}
	}
}
