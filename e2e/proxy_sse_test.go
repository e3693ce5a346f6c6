package e2e

// The client side of the proxy tests: posts and streams sent through a
// proxy the way a browser sends them, and an event-stream reader that, like
// EventSource, reconnects with Last-Event-ID whenever a stream ends.

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// viaProxy is hxchat as a client reaches it through one proxy.
type viaProxy struct {
	name   string
	base   string       // hxchat's base URL as the client uses it: the reverse proxy's, or hxchat's own through a forward proxy
	client *http.Client // goes through the proxy (see proxyClient)
}

// roomURL is the page of room (a plain ASCII name) through the proxy.
func (v *viaProxy) roomURL(room string) string {
	return v.base + "/chat/" + url.PathEscape(room) + "/"
}

// post sends a message through the proxy as a plain form post from a
// browser on plain HTTP (an Origin header, no Sec-Fetch-Site), and expects
// the 303 a stored message gets. The Origin is checked against the Host
// hxchat sees, so this also checks that the proxy keeps the Host.
func (v *viaProxy) post(t testing.TB, room, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	body := strings.NewReader(url.Values{"message": {text}}.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.roomURL(room)+"messages", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", v.base)
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("post %q to %s through %s: %v", text, room, v.name, err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("post %q to %s through %s: status %d, want 303\n%s", text, room, v.name, resp.StatusCode, b)
	}
}

// eventsRequest is a request for room's stream as EventSource sends it,
// with the Accept-Encoding of a browser, so a proxy that would compress the
// stream gets the chance to.
func (v *viaProxy) eventsRequest(ctx context.Context, room, lastID string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.roomURL(room)+"events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return req, nil
}

// headerTimeout bounds the wait for a stream's response headers.
const headerTimeout = 5 * time.Second

// events opens room's stream through the proxy (resuming after lastID when
// it is not empty) and reads it until the test ends or Close. It fails the
// test unless the headers arrive within headerTimeout, uncompressed, as an
// event stream.
func (v *viaProxy) events(t testing.TB, room, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := v.eventsRequest(ctx, room, lastID)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	late := time.AfterFunc(headerTimeout, cancel)
	resp, err := v.client.Do(req)
	if !late.Stop() {
		err = fmt.Errorf("no response headers within %v (held back by the proxy?): %v", headerTimeout, err)
	}
	if err != nil {
		cancel()
		t.Fatalf("open %s's stream through %s: %v", room, v.name, err)
	}
	c := &sseClient{Events: make(chan sseEvent, 10000), Pings: make(chan struct{}, 1000), Done: make(chan error, 1), cancel: cancel}
	t.Cleanup(c.Close)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		t.Fatalf("open %s's stream through %s: status %d\n%s", room, v.name, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("stream through %s: Content-Type %q, want text/event-stream", v.name, ct)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		resp.Body.Close()
		t.Fatalf("stream through %s: Content-Encoding %q: a compressed stream is held back in compression buffers", v.name, ce)
	}
	go func() {
		defer resp.Body.Close()
		c.Done <- readEvents(resp.Body,
			func(ev sseEvent) { c.Events <- ev }, nil,
			func() {
				select {
				case c.Pings <- struct{}{}:
				default:
				}
			},
			func(time.Duration) {})
	}()
	return c
}

// resumingReader follows a room's stream through a proxy the way
// EventSource does: whenever a stream ends it waits the stream's retry delay
// and reconnects with Last-Event-ID. It decompresses gzip itself, since the
// proxy may compress the stream and the client does not do it by itself.
type resumingReader struct {
	mu      sync.Mutex
	events  []sseEvent
	streams int      // connections that got a 200
	gzipped int      // of them, how many were gzip-compressed
	ends    []string // how each stream ended
	arrived chan struct{}
}

// maxRetry caps the retry delay the reader honours.
const maxRetry = 3 * time.Second

// follow reads room's stream through v from after lastID until ctx ends,
// over at most maxStreams connections.
func (r *resumingReader) follow(ctx context.Context, v *viaProxy, room, lastID string, maxStreams int) {
	retry := time.Second
	for range maxStreams {
		err := r.once(ctx, v, room, lastID, &retry)
		r.mu.Lock()
		r.ends = append(r.ends, fmt.Sprint(err))
		if n := len(r.events); n > 0 {
			lastID = r.events[n-1].ID
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(retry, maxRetry)):
		}
	}
}

// once reads one stream to its end.
func (r *resumingReader) once(ctx context.Context, v *viaProxy, room, lastID string, retry *time.Duration) error {
	// A buffering proxy holds even the headers back until the stream ends.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := v.eventsRequest(hctx, room, lastID)
	if err != nil {
		return err
	}
	late := time.AfterFunc(10*time.Second, cancel)
	resp, err := v.client.Do(req)
	late.Stop()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	body := io.Reader(resp.Body)
	gzipped := resp.Header.Get("Content-Encoding") == "gzip"
	if gzipped {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		body = zr
	}
	r.mu.Lock()
	r.streams++
	if gzipped {
		r.gzipped++
	}
	r.mu.Unlock()
	return readEvents(body,
		func(ev sseEvent) {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
			select {
			case r.arrived <- struct{}{}:
			default:
			}
		}, nil,
		func() {},
		func(d time.Duration) { *retry = d })
}

// snapshot returns the events so far and the stream counts.
func (r *resumingReader) snapshot() (events []sseEvent, streams, gzipped int, ends []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sseEvent(nil), r.events...), r.streams, r.gzipped, append([]string(nil), r.ends...)
}
