package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These benchmarks run the real binary and talk to it over loopback HTTP.
// go test -run '^$' -bench . -benchtime 1x ./e2e/

// BenchmarkIdleStreams reports the server's resident memory with 1000 open,
// idle SSE streams spread over 50 rooms.
func BenchmarkIdleStreams(b *testing.B) {
	const n = 1000
	srv := startServer(b)
	before := rss(b, srv.PID)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	for i := range n {
		resp := openStream(b, ctx, client, srv.URL+"/chat/room"+strconv.Itoa(i%50)+"/events?after=0")
		go func() { _, _ = io.Copy(io.Discard, resp.Body) }()
	}
	waitMetric(b, srv.URL, "hxchat_streams_open", n)
	after := rss(b, srv.PID)
	for b.Loop() {
		// The measurement is the state reached above; nothing to repeat.
	}
	b.ReportMetric(float64(after)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(after-before)/n, "rss-bytes/stream")
}

// BenchmarkHTTPFanout posts 1000 messages (4 posters) into a room with 100
// SSE subscribers and waits until every subscriber has every message.
func BenchmarkHTTPFanout(b *testing.B) {
	const subs, msgs, posters = 100, 1000, 4
	srv := startServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: subs + posters, DisableCompression: true}}
	noRedirect := &http.Client{Transport: client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	round := 0
	for b.Loop() {
		round++
		room := "fan" + strconv.Itoa(round)
		ctx, cancel := context.WithCancel(b.Context())
		var got atomic.Int64
		var wg sync.WaitGroup
		for range subs {
			resp := openStream(b, ctx, client, srv.URL+"/chat/"+room+"/events?after=0")
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 64<<10), 64<<10)
				seen := 0
				for sc.Scan() {
					if bytes.HasPrefix(sc.Bytes(), []byte("id: ")) {
						got.Add(1)
						if seen++; seen == msgs {
							return
						}
					}
				}
			}()
		}
		start := time.Now()
		var pw sync.WaitGroup
		for p := range posters {
			pw.Add(1)
			go func() {
				defer pw.Done()
				for i := p; i < msgs; i += posters {
					resp, err := noRedirect.PostForm(srv.URL+"/chat/"+room+"/messages", url.Values{"message": {fmt.Sprintf("message %d from poster %d", i, p)}})
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusSeeOther {
						b.Errorf("post: status %d", resp.StatusCode)
						return
					}
				}
			}()
		}
		pw.Wait()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d of %d deliveries within 30s", got.Load(), subs*msgs)
		}
		elapsed := time.Since(start)
		cancel()
		if g := got.Load(); g != subs*msgs {
			b.Fatalf("got %d deliveries, want %d", g, subs*msgs)
		}
		b.ReportMetric(float64(subs*msgs)/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(float64(msgs)/elapsed.Seconds(), "posts/s")
	}
}

func openStream(tb testing.TB, ctx context.Context, c *http.Client, u string) *http.Response {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("open %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("open %s: status %d", u, resp.StatusCode)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	return resp
}

// waitMetric polls /metrics until the named gauge equals want (10 s).
func waitMetric(tb testing.TB, base, name string, want float64) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last float64 = -1
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
					last, _ = strconv.ParseFloat(v, 64)
				}
			}
			resp.Body.Close()
			if last == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%s = %v after 10s, want %v", name, last, want)
}

// rss reads a process's resident set size in bytes from /proc.
func rss(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("VmRSS not found")
	return 0
}

// BenchmarkHTTPPost measures plain form POSTs to the real binary from 8
// concurrent posters into one room, with each store: posts/s and the 99th
// percentile latency of one POST (a success means the message is stored).
func BenchmarkHTTPPost(b *testing.B) {
	b.Run("SQLite8Posters", func(b *testing.B) { benchPost(b, startServer(b), 8) })
	b.Run("Memory8Posters", func(b *testing.B) { benchPost(b, startServer(b, "-db", ":memory:"), 8) })
}

func benchPost(b *testing.B, srv *server, posters int) {
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: posters},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	form := url.Values{"message": {"a chat message of a typical length, a sentence or two."}}.Encode()
	lat := make([][]time.Duration, posters)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for p := range posters {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				resp, err := client.Post(srv.URL+"/chat/bench/messages", "application/x-www-form-urlencoded", strings.NewReader(form))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusSeeOther {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "posts/s")
	b.ReportMetric(float64(all[(len(all)-1)*99/100])/float64(time.Millisecond), "p99-ms")
}
