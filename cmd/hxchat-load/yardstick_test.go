package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startYardstick runs the tool's -serve-yardstick mode in-process on a
// free loopback port and returns its URL and a func that stops it and
// returns run's error.
func startYardstick(t *testing.T) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-serve-yardstick", "127.0.0.1:0"}, pw, io.Discard)
		pw.CloseWithError(fmt.Errorf("run returned %v", err))
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading the URL served: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var stopped bool
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = fmt.Errorf("the yardstick did not stop within 10 s")
			}
		}
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return strings.TrimSpace(line), stop
}

// TestYardstickServer: two subscribers of a room each get the five
// messages posted to it, as ids 1 to 5 in order with the text posted, and
// stopping the server ends their streams.
func TestYardstickServer(t *testing.T) {
	u, stop := startYardstick(t)
	if !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Fatalf("first line %q: want the URL served", u)
	}
	type event struct{ id, data string }
	var streams []chan event
	for range 2 {
		resp, err := http.Get(u + "/chat/lobby/events")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("events: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		c := make(chan event, 16)
		streams = append(streams, c)
		go func() {
			defer close(c)
			defer resp.Body.Close()
			p := &sseParser{}
			_ = p.read(resp.Body, func(id, data []byte) { c <- event{string(id), string(data)} })
		}()
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := 1; i <= 5; i++ {
		resp, err := noRedirect.PostForm(u+"/chat/lobby/messages", url.Values{"message": {"message " + strconv.Itoa(i)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/chat/lobby/" {
			t.Fatalf("post %d: status %d, Location %q; want 303 to /chat/lobby/", i, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for n, c := range streams {
		var ids []string
		for len(ids) < 5 {
			select {
			case ev, ok := <-c:
				if !ok {
					t.Fatalf("subscriber %d: stream ended after ids %v", n, ids)
				}
				ids = append(ids, ev.id)
				seq := strconv.Itoa(len(ids))
				for _, want := range []string{`<li id="msg-` + seq + `"`, `<span class="text">message ` + seq + `</span>`} {
					if !strings.Contains(ev.data, want) {
						t.Errorf("subscriber %d, event %s: data %q lacks %q", n, ev.id, ev.data, want)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("subscriber %d: ids %v after 10 s, want 1 to 5", n, ids)
			}
		}
		if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(ids, want) {
			t.Errorf("subscriber %d: ids %v, want %v", n, ids, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	for n, c := range streams {
		select {
		case ev, ok := <-c:
			if ok {
				t.Errorf("subscriber %d: event %+v after the five", n, ev)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("subscriber %d: stream still open 5 s after the server stopped", n)
		}
	}
}

// TestYardstickLoad runs a small load against the yardstick: every
// subscriber gets every message, once and in order, and the server's
// memory is read from its /metrics.
func TestYardstickLoad(t *testing.T) {
	u, stop := startYardstick(t)
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, []string{"-url", u, "-subscribers", "20", "-rooms", "2", "-posters", "2",
		"-rate", "20", "-duration", "2s", "-warmup", "200ms", "-drain", "5s", "-progress", "0", "-json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("parsing the JSON report: %v\n%s", err, stdout.String())
	}
	t.Logf("report: %s", stdout.String())
	if rep.Connected != 20 {
		t.Errorf("connected = %d, want 20", rep.Connected)
	}
	if rep.Posted == 0 || rep.PostErrors != 0 {
		t.Errorf("posted %d with %d errors: want some and none", rep.Posted, rep.PostErrors)
	}
	if rep.Expected == 0 || rep.Deliveries != rep.Expected {
		t.Errorf("deliveries %d of %d expected: want all, and some", rep.Deliveries, rep.Expected)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.OutOfOrder != 0 || rep.Reconnects != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, reconnects %d: want none (last error %q)",
			rep.Lost, rep.Duplicated, rep.OutOfOrder, rep.Reconnects, rep.LastError)
	}
	if rep.ServerEnd.RSSBytes <= 0 || rep.ServerEnd.Goroutines <= 0 {
		t.Errorf("server stats at the end = %+v: want both read from /metrics", rep.ServerEnd)
	}
	if err := stop(); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

func TestServeYardstickLoopbackOnly(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "192.0.2.1:0", "nonsense"} {
		if _, err := parseFlags([]string{"-serve-yardstick", addr}, io.Discard); err == nil {
			t.Errorf("-serve-yardstick %s: no error, want one (not loopback)", addr)
		}
	}
	if _, err := parseFlags([]string{"-serve-yardstick", "127.0.0.1:0"}, io.Discard); err != nil {
		t.Errorf("-serve-yardstick 127.0.0.1:0: %v", err)
	}
}
