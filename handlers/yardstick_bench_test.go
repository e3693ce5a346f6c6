package handlers

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/internal/yardstick"
	"github.com/hxchat/hxchat/views"
)

// BenchmarkFanout1000 measures fan-out to 1000 SSE subscribers of one room
// over real loopback HTTP: each round posts 100 messages with hub.Post (the
// same posting path for both) and waits until every subscriber has read
// every message. "limit" is a minimal hand-written broadcaster
// (yardstick.Broadcaster: encode once, one bounded channel per subscriber,
// non-blocking send, one flush per batch): the yardstick hxchat's hub +
// stream path is measured against.
//
//	go test -run '^$' -bench Fanout1000 -benchtime 3x ./handlers/
func BenchmarkFanout1000(b *testing.B) {
	b.Run("limit", func(b *testing.B) {
		hub := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{Render: views.RenderMessage})
		bc := yardstick.New()
		ts := httptest.NewServer(bc)
		defer ts.Close()
		defer bc.Close()
		benchFanout(b, ts.URL+"/", func(ctx context.Context, room string, a chat.Author, text string) error {
			// Post has no subscribers to fan out to here: it validates and
			// stores; the render and fan-out are the broadcaster's.
			m, err := hub.Post(ctx, room, a, text)
			if err != nil {
				return err
			}
			html, err := views.RenderMessage(m)
			if err != nil {
				return err
			}
			bc.Publish(m.Seq, html)
			return nil
		})
	})
	b.Run("hxchat", func(b *testing.B) {
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		reg := prometheus.NewRegistry()
		metrics := NewMetrics(reg)
		store := chat.NewMemoryStore(0)
		hub := chat.NewHub(store, chat.HubOptions{Render: views.RenderMessage, RenderPresence: views.RenderPresence})
		streams := NewStreams(logger, hub, metrics, StreamConfig{Heartbeat: time.Hour, Retry: 2 * time.Second, WriteTimeout: 5 * time.Second})
		ts := httptest.NewServer(NewServer(Deps{Logger: logger, Hub: hub, Streams: streams, Metrics: metrics, Gatherer: reg,
			Config: Config{History: 50, MaxBody: 32 << 10}, Secret: testSecret}))
		defer ts.Close()
		defer streams.Shutdown()
		benchFanout(b, ts.URL+"/chat/lobby/events?after=0", func(ctx context.Context, room string, a chat.Author, text string) error {
			_, err := hub.Post(ctx, room, a, text)
			return err
		})
	})
}

// BenchmarkLiveLog1000 is BenchmarkFanout1000's hxchat case for 1000
// browsers without JavaScript: each reads the room's live log, the HTML
// document the server extends with each message (handlers/frame.go).
//
//	go test -run '^$' -bench LiveLog1000 -benchtime 3x ./handlers/
func BenchmarkLiveLog1000(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	hub := chat.NewHub(chat.NewMemoryStore(0), chat.HubOptions{Render: views.RenderMessage, RenderPresence: views.RenderPresence})
	streams := NewStreams(logger, hub, metrics, StreamConfig{Heartbeat: time.Hour, Retry: 2 * time.Second, WriteTimeout: 5 * time.Second})
	ts := httptest.NewServer(NewServer(Deps{Logger: logger, Hub: hub, Streams: streams, Metrics: metrics, Gatherer: reg,
		Config: Config{History: 50, MaxBody: 32 << 10}, Secret: testSecret}))
	defer ts.Close()
	defer streams.Shutdown()
	benchFanout(b, ts.URL+"/chat/lobby/log", func(ctx context.Context, room string, a chat.Author, text string) error {
		_, err := hub.Post(ctx, room, a, text)
		return err
	})
}

// lineSeq returns the seq of the message a line of a stream carries: an
// SSE "id: SEQ-EPOCH" line, or a live log's `<li id="msg-SEQ"` line.
func lineSeq(line []byte) (int64, bool) {
	if v, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
		v, _, _ = bytes.Cut(bytes.TrimSpace(v), []byte("-")) // SEQ-EPOCH
		seq, err := strconv.ParseInt(string(v), 10, 64)
		return seq, err == nil
	}
	if v, ok := bytes.CutPrefix(line, []byte(`<li id="msg-`)); ok {
		v, _, _ = bytes.Cut(v, []byte(`"`))
		seq, err := strconv.ParseInt(string(v), 10, 64)
		return seq, err == nil
	}
	return 0, false
}

func benchFanout(b *testing.B, url string, post func(context.Context, string, chat.Author, string) error) {
	const subs, msgs = 1000, 100
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: subs, DisableCompression: true}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(b.Context())
	var round, readers sync.WaitGroup
	defer readers.Wait()
	defer cancel()
	for range subs {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("open stream: %v %v", err, resp)
		}
		readers.Go(func() {
			defer resp.Body.Close()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			var last int64
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				// Count each message once by its seq: presence events
				// repeat the newest id.
				if seq, ok := lineSeq(line); ok && seq > last {
					last = seq
					if seq%msgs == 0 {
						round.Done()
					}
				}
			}
		})
	}
	author := chat.Author{Name: "alice", Key: "a11ce0000000"}
	text := "a chat message of a typical length, a sentence or two."
	rounds := 0
	writes := writeSyscalls(b)
	for b.Loop() {
		rounds++
		round.Add(subs)
		for range msgs {
			if err := post(ctx, "lobby", author, text); err != nil {
				b.Fatal(err)
			}
		}
		done := make(chan struct{})
		go func() { round.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatal("subscribers did not get every message within a minute")
		}
	}
	b.ReportMetric(float64(rounds*msgs*subs)/b.Elapsed().Seconds(), "deliveries/s")
	// The server's writes (the clients only read): how well flushes batch.
	b.ReportMetric(float64(writeSyscalls(b)-writes)/float64(rounds*msgs*subs), "writes/delivery")
}

// writeSyscalls returns the process's write system calls so far (syscw in
// /proc/self/io), or 0 where there is no such file.
func writeSyscalls(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				b.Fatalf("parse %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}
