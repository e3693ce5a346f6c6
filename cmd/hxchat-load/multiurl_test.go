package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/internal/yardstick"
)

func TestParseURLs(t *testing.T) {
	for _, c := range []struct {
		list        string
		allowRemote bool
		want        []string // nil: an error
	}{
		{"http://127.0.0.1:8080", false, []string{"http://127.0.0.1:8080"}},
		{"http://127.0.0.1:8080/", false, []string{"http://127.0.0.1:8080"}},
		{"http://127.0.0.1:1,http://127.0.0.1:2/", false, []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}},
		{" http://127.0.0.1:1 , https://localhost:2/x/ ", false, []string{"http://127.0.0.1:1", "https://localhost:2/x"}},
		{"http://127.0.0.1:1,http://127.0.0.1:1", false, []string{"http://127.0.0.1:1", "http://127.0.0.1:1"}},
		{"http://127.0.0.1:1,http://10.0.0.1:2", false, nil},
		{"http://127.0.0.1:1,http://10.0.0.1:2", true, []string{"http://127.0.0.1:1", "http://10.0.0.1:2"}},
		{"http://127.0.0.1:1,", false, nil},
		{"http://127.0.0.1:1,,http://127.0.0.1:2", false, nil},
		{"http://127.0.0.1:1,ftp://127.0.0.1:2", false, nil},
		{"", false, nil},
	} {
		got, err := parseURLs(c.list, c.allowRemote)
		if c.want == nil {
			if err == nil {
				t.Errorf("parseURLs(%q, %v) = %q, want an error", c.list, c.allowRemote, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseURLs(%q, %v) = %q, %v; want %q", c.list, c.allowRemote, got, err, c.want)
		}
	}
	o, err := parseFlags([]string{"-url", "http://127.0.0.1:1/,http://[::1]:2"}, io.Discard)
	if err != nil || o.url != "http://127.0.0.1:1,http://[::1]:2" || len(o.urls) != 2 {
		t.Errorf("parseFlags: url %q urls %q err %v; want both normalized", o.url, o.urls, err)
	}
	// The error names the URL at fault, and -allow-remote.
	_, err = parseFlags([]string{"-url", "http://127.0.0.1:1,http://192.0.2.1:2"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1") || !strings.Contains(err.Error(), "-allow-remote") {
		t.Errorf("parseFlags with one remote URL of two: %v, want a refusal naming it and -allow-remote", err)
	}
}

func TestSumStats(t *testing.T) {
	got := sumStats([]serverStats{{100, 10}, {200, 20}, {300, 30}})
	if got != (serverStats{600, 60}) {
		t.Errorf("sum = %+v, want 600, 60", got)
	}
	got = sumStats([]serverStats{{100, 10}, {-1, 20}, {300, 30}})
	if got != (serverStats{-1, 60}) {
		t.Errorf("sum with one RSS missing = %+v, want -1, 60", got)
	}
}

// hostCounter counts a handler's requests by Host header and kind.
type hostCounter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[[2]string]int // {host, kind}
	// rooms: host -> rooms posted to
	rooms map[string]map[string]bool
}

func (h *hostCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := r.Method + " " + r.URL.Path
	if strings.HasPrefix(r.URL.Path, "/chat/") {
		kind = r.Method + " " + r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	}
	h.mu.Lock()
	h.n[[2]string{r.Host, kind}]++
	if r.Method == http.MethodPost {
		if h.rooms[r.Host] == nil {
			h.rooms[r.Host] = map[string]bool{}
		}
		h.rooms[r.Host][strings.Split(r.URL.Path, "/")[2]] = true
	}
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

func (h *hostCounter) count(host, kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[[2]string{host, kind}]
}

// TestMultiURL runs a load with two base URLs that reach the same
// yardstick under two names (127.0.0.1 and localhost), so that its
// requests can be told apart by their Host: half the subscribers read from
// each, poster 0 posts to the first and poster 1 to the second (each to
// both rooms in turn), every node's /healthz and /metrics are read, and
// the report sums the nodes' figures and lists each.
func TestMultiURL(t *testing.T) {
	ys := yardstick.NewServer()
	hc := &hostCounter{next: ys, n: map[[2]string]int{}, rooms: map[string]map[string]bool{}}
	srv := httptest.NewServer(hc)
	defer srv.Close()
	defer ys.Close()
	a := strings.TrimPrefix(srv.URL, "http://")
	b := strings.Replace(a, "127.0.0.1", "localhost", 1)

	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, []string{"-url", "http://" + a + ",http://" + b + "/", "-subscribers", "20", "-rooms", "2", "-posters", "2",
		"-rate", "20", "-duration", "2s", "-warmup", "200ms", "-drain", "5s", "-progress", "0", "-json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("parsing the JSON report: %v\n%s", err, stdout.String())
	}
	t.Logf("report: %s", stdout.String())
	if rep.URL != "http://"+a+",http://"+b {
		t.Errorf("url = %q, want both, normalized", rep.URL)
	}
	if rep.Connected != 20 || rep.Posted == 0 || rep.Expected == 0 || rep.Deliveries != rep.Expected {
		t.Errorf("connected %d, posted %d, deliveries %d of %d: want 20, some, all of some",
			rep.Connected, rep.Posted, rep.Deliveries, rep.Expected)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.OutOfOrder != 0 || rep.Reconnects != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, reconnects %d: want none (last error %q)",
			rep.Lost, rep.Duplicated, rep.OutOfOrder, rep.Reconnects, rep.LastError)
	}
	for _, host := range []string{a, b} {
		if n := hc.count(host, "GET events"); n != 10 {
			t.Errorf("%s: %d streams, want 10 (subscribers 1, 3, 5… on the second URL)", host, n)
		}
		if n := hc.count(host, "GET /healthz"); n == 0 {
			t.Errorf("%s: /healthz not read", host)
		}
		if n := hc.count(host, "GET /metrics"); n < 3 {
			t.Errorf("%s: /metrics read %d times, want at least 3 (before, connected, end)", host, n)
		}
		if len(hc.rooms[host]) != 2 {
			t.Errorf("%s: posts to rooms %v, want both (each poster posts to the rooms in turn)", host, hc.rooms[host])
		}
	}
	pa, pb := hc.count(a, "POST messages"), hc.count(b, "POST messages")
	if pa == 0 || pb == 0 || pa-pb > 1 || pb-pa > 1 || int64(pa+pb) != rep.Posted {
		t.Errorf("posts %d to %s and %d to %s (posted %d): want one poster's share each", pa, a, pb, b, rep.Posted)
	}
	if len(rep.Nodes) != 2 || rep.Nodes[0].URL != "http://"+a || rep.Nodes[1].URL != "http://"+b {
		t.Fatalf("nodes = %+v, want the two URLs in order", rep.Nodes)
	}
	if want := rep.Nodes[0].End.Goroutines + rep.Nodes[1].End.Goroutines; rep.Nodes[0].End.Goroutines <= 0 || rep.ServerEnd.Goroutines != want {
		t.Errorf("goroutines at the end %d, nodes %+v: want the sum of the nodes'", rep.ServerEnd.Goroutines, rep.Nodes)
	}
	if want := rep.Nodes[0].Before.RSSBytes + rep.Nodes[1].Before.RSSBytes; rep.Nodes[0].Before.RSSBytes <= 0 || rep.ServerBefore.RSSBytes != want {
		t.Errorf("RSS before %d, nodes %+v: want the sum of the nodes'", rep.ServerBefore.RSSBytes, rep.Nodes)
	}
	// The human table says the figures are sums.
	stdout.Reset()
	if err := writeTable(&stdout, rep); err != nil || !strings.Contains(stdout.String(), "server RSS (2 nodes)") {
		t.Errorf("table: %v\n%s\nwant \"server RSS (2 nodes)\"", err, stdout.String())
	}
}
