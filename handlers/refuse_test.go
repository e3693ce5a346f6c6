package handlers

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseField is one field line of an SSE block.
type sseField struct{ name, value string }

// sseBlocks splits an event stream into its blocks (each the field lines up
// to a blank line), as the SSE spec reads them: comments dropped, one
// leading space of a value removed. A block cut off by the end is kept.
func sseBlocks(t *testing.T, body string) [][]sseField {
	t.Helper()
	var blocks [][]sseField
	var cur []sseField
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if cur != nil {
				blocks = append(blocks, cur)
			}
			cur = nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		cur = append(cur, sseField{name, strings.TrimPrefix(value, " ")})
	}
	if cur != nil {
		t.Errorf("stream ends inside a block: %q", cur)
		blocks = append(blocks, cur)
	}
	return blocks
}

// blockInfo is what htmx's hx-sse makes of a block.
type blockInfo struct {
	retry   time.Duration // -1: none
	hasID   bool
	hasData bool
	event   string
	data    string // data lines joined by LF
}

func infoOf(t *testing.T, b []sseField) blockInfo {
	t.Helper()
	in := blockInfo{retry: -1}
	var data []string
	for _, f := range b {
		switch f.name {
		case "retry":
			ms, err := strconv.Atoi(f.value)
			if err != nil {
				t.Errorf("retry: %q is not a number of milliseconds", f.value)
				continue
			}
			in.retry = time.Duration(ms) * time.Millisecond
		case "id":
			in.hasID = true
		case "data":
			in.hasData = true
			data = append(data, f.value)
		case "event":
			in.event = f.value
		default:
			t.Errorf("unexpected field %q in block %q", f.name, b)
		}
	}
	in.data = strings.Join(data, "\n")
	return in
}

// checkRetryBlock checks what every stream's opening and a refusal promise
// of a block: a retry htmx honours (the block has data or an event), at
// least min, and no id (Last-Event-ID is kept).
func checkRetryBlock(t *testing.T, in blockInfo, min time.Duration) {
	t.Helper()
	if in.retry < 0 {
		t.Errorf("block has no retry: field")
	} else if in.retry < min {
		t.Errorf("retry %v, want at least %v", in.retry, min)
	}
	if !in.hasData && in.event == "" {
		t.Errorf("retry: in a block without data: or event: (htmx 4 ignores it)")
	}
	if in.hasID {
		t.Errorf("block has an id: field; it would move the browser's Last-Event-ID")
	}
}

func checkStreamHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache, no-transform",
		"X-Accel-Buffering": "no",
		"Content-Length":    "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestRefuseStream(t *testing.T) {
	for _, c := range []struct {
		name     string
		retry    time.Duration
		min, max time.Duration
	}{
		{"Retry2s", 2 * time.Second, 2 * time.Second, 3 * time.Second},
		{"ZeroIsAtLeastASecond", 0, time.Second, 1500 * time.Millisecond},
		{"BelowMinimum", 10 * time.Millisecond, time.Second, 1500 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 20 {
				w := httptest.NewRecorder()
				const reason = `the server has too many open streams; try again <soon> & "later"`
				refuseStream(w, c.retry, reason)
				resp := w.Result()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200 (htmx retries only after a stream)", resp.StatusCode)
				}
				checkStreamHeaders(t, resp.Header)
				blocks := sseBlocks(t, w.Body.String())
				if len(blocks) != 1 {
					t.Fatalf("%d blocks, want 1: %q", len(blocks), w.Body.String())
				}
				in := infoOf(t, blocks[0])
				checkRetryBlock(t, in, c.min)
				if in.retry > c.max {
					t.Errorf("retry %v, want at most %v (retry plus half)", in.retry, c.max)
				}
				seen[in.retry] = true
				ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
				if err != nil || time.Duration(ra)*time.Second < in.retry || time.Duration(ra-1)*time.Second >= in.retry {
					t.Errorf("Retry-After %q, want the retry %v in whole seconds, rounded up", resp.Header.Get("Retry-After"), in.retry)
				}
				if in.event != "" {
					t.Errorf("event: %q; an unnamed event is what htmx swaps", in.event)
				}
				if !strings.HasPrefix(in.data, `<hx-partial hx-target="#stream-status"`) {
					t.Errorf("data %q, want a partial for #stream-status", in.data)
				}
				for _, want := range []string{"Live updates paused", "the server has too many open streams; try again &lt;soon&gt; &amp; &#34;later&#34;", "Reconnecting"} {
					if !strings.Contains(in.data, want) {
						t.Errorf("data %q does not say %q", in.data, want)
					}
				}
			}
			if len(seen) < 2 {
				t.Errorf("20 refusals all advertised the same retry %v: no jitter", seen)
			}
		})
	}
}

func TestStreamOpening(t *testing.T) {
	b := streamOpening(2500 * time.Millisecond)
	if strings.Contains(string(b), "\r") {
		t.Errorf("opening has a CR: %q", b)
	}
	if !strings.HasSuffix(string(b), "\n\n") {
		t.Errorf("opening %q does not end its block", b)
	}
	blocks := sseBlocks(t, string(b))
	if len(blocks) != 1 {
		t.Fatalf("%d blocks, want 1: %q", len(blocks), b)
	}
	in := infoOf(t, blocks[0])
	checkRetryBlock(t, in, 2500*time.Millisecond)
	if in.retry != 2500*time.Millisecond {
		t.Errorf("retry %v, want exactly 2.5s (an admitted stream is not jittered)", in.retry)
	}
	// The data empties #stream-status and nothing else: no element outside
	// the partial, which htmx would swap into #log.
	want := `<hx-partial hx-target="#stream-status" hx-swap="innerHTML"></hx-partial>`
	if in.event != "" || in.data != want {
		t.Errorf("opening event %q data %q, want an unnamed event with %q", in.event, in.data, want)
	}
}

func TestSSEBlockMultiline(t *testing.T) {
	got := string(sseBlock(time.Second, []byte("a\nb\n\nc\n")))
	if want := "retry: 1000\ndata: a\ndata: b\ndata: \ndata: c\n\n"; got != want {
		t.Errorf("sseBlock = %q, want %q", got, want)
	}
	if got, want := string(sseBlock(time.Second, nil)), "retry: 1000\ndata:\n\n"; got != want {
		t.Errorf("sseBlock without data = %q, want %q", got, want)
	}
}
