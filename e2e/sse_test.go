package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// sseEvent is one message event of a stream.
type sseEvent struct {
	ID   string // as sent: "SEQ-EPOCH" (or "SEQ")
	Seq  int64  // the seq of ID (chat.ParseCursor); 0 when ID is none
	Data string
}

// sseClient reads one stream's events into a channel: message events into
// Events, presence events (member lists) into Presence.
type sseClient struct {
	Events   chan sseEvent
	Presence chan sseEvent
	Pings    chan struct{}
	Done     chan error
	cancel   context.CancelFunc
}

// isPresence reports whether an event's data is a presence event's: a
// member list for #presence rather than a message.
func isPresence(data string) bool {
	return strings.HasPrefix(data, `<hx-partial hx-target="#presence"`)
}

// isStreamStatus reports whether an event's data is for #stream-status:
// a stream's opening (which empties it) or a refusal's notice.
func isStreamStatus(data string) bool {
	return strings.HasPrefix(data, `<hx-partial hx-target="#stream-status"`)
}

// openSSE opens url (with Last-Event-ID when lastID is not empty) and reads
// its events until the test ends or Close.
func openSSE(t testing.TB, url, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open %s: status %d", url, resp.StatusCode)
	}
	c := &sseClient{Events: make(chan sseEvent, 100000), Presence: make(chan sseEvent, 1000), Pings: make(chan struct{}, 1000), Done: make(chan error, 1), cancel: cancel}
	t.Cleanup(c.Close)
	go func() {
		defer resp.Body.Close()
		c.Done <- readEvents(resp.Body,
			func(ev sseEvent) { c.Events <- ev },
			func(ev sseEvent) {
				select {
				case c.Presence <- ev:
				default: // nobody reads them: drop
				}
			},
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

// Close ends the stream.
func (c *sseClient) Close() { c.cancel() }

// Next waits up to d for the next event.
func (c *sseClient) Next(t testing.TB, d time.Duration) sseEvent {
	t.Helper()
	select {
	case ev := <-c.Events:
		return ev
	case err := <-c.Done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return sseEvent{}
}

// Collect reads n events, failing after d in all.
func (c *sseClient) Collect(t testing.TB, n int, d time.Duration) []sseEvent {
	t.Helper()
	out := make([]sseEvent, 0, n)
	deadline := time.After(d)
	for len(out) < n {
		select {
		case ev := <-c.Events:
			out = append(out, ev)
		case err := <-c.Done:
			t.Fatalf("stream ended after %d of %d events: %v", len(out), n, err)
		case <-deadline:
			var last []string
			for _, ev := range out[max(0, len(out)-3):] {
				last = append(last, ev.ID)
			}
			// Where the seqs skip, for a stream that should have them all.
			var skips []string
			for i := 1; i < len(out); i++ {
				if out[i].Seq != out[i-1].Seq+1 && len(skips) < 5 {
					skips = append(skips, fmt.Sprintf("%d→%d", out[i-1].Seq, out[i].Seq))
				}
			}
			t.Fatalf("got %d of %d events within %v; the last: %v; seqs skip at %v", len(out), n, d, last, skips)
		}
	}
	return out
}

// textOf extracts a message's text from its fragment.
func textOf(data string) string {
	_, rest, ok := strings.Cut(data, `<span class="text">`)
	if !ok {
		return ""
	}
	text, _, _ := strings.Cut(rest, "</span>")
	return text
}

// readEvents parses an event stream from r until it ends, calling event for
// each message event, presence (if not nil) for each presence event (a
// member list, not a message), comment for each comment line and retry for
// each retry field. It returns the read error: io.EOF when the stream ended
// cleanly. An event cut off by the end of the stream is not dispatched.
func readEvents(r io.Reader, event, presence func(sseEvent), comment func(), retry func(time.Duration)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				switch {
				case isStreamStatus(ev.Data):
					// not a message: the stream's own notice
				case !isPresence(ev.Data):
					event(ev)
				case presence != nil:
					presence(ev)
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "":
			comment()
		case "id":
			ev.ID = value
			if c, ok := chat.ParseCursor(value); ok {
				ev.Seq = c.Seq
			}
		case "data":
			data = append(data, value)
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				retry(time.Duration(ms) * time.Millisecond)
			}
		}
	}
}
