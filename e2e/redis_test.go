package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// Two nodes on one Redis serve the same rooms: what is posted on one is
// seen on both, in one order, once; a client can move between them.
func TestTwoNodesOneRedis(t *testing.T) {
	r := redistest.Start(t, redistest.Options{})
	a := startServer(t, "-redis", r.URL())
	b := startServer(t, "-redis", r.URL())

	t.Run("PostOnASeenOnB", func(t *testing.T) {
		onB := openSSE(t, b.URL+"/chat/hello/events?after=0", "")
		a.post(t, "hello", "from node A")
		if ev := onB.Next(t, 5*time.Second); ev.Seq != 1 || textOf(ev.Data) != "from node A" {
			t.Fatalf("node B got %+v", ev)
		}
	})

	t.Run("FourPostersTwoNodes", func(t *testing.T) {
		const posters, each = 4, 500
		var subs []*sseClient
		for _, n := range []*server{a, a, b, b} {
			subs = append(subs, openSSE(t, n.URL+"/chat/big/events?after=0", ""))
		}
		var wg sync.WaitGroup
		errs := make(chan error, posters)
		for p := range posters {
			node := []*server{a, b}[p%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- postMany(node.URL, "big", p, each)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var first []string
		for i, s := range subs {
			evs := s.Collect(t, posters*each, 30*time.Second)
			texts := make([]string, len(evs))
			for j, ev := range evs {
				if want := int64(j + 1); ev.Seq != want {
					t.Fatalf("subscriber %d: event %d has id %s, want seq %d", i, j, ev.ID, want)
				}
				texts[j] = textOf(ev.Data)
			}
			if first == nil {
				first = texts
			} else if !slices.Equal(texts, first) {
				t.Fatalf("subscriber %d saw another order than subscriber 0", i)
			}
			select {
			case ev := <-s.Events:
				t.Fatalf("subscriber %d: extra event %s", i, ev.ID)
			case <-time.After(200 * time.Millisecond):
			}
		}
		// Each poster's messages are in the order it sent them.
		next := make([]int, posters)
		for _, text := range first {
			var p, i int
			if _, err := fmt.Sscanf(text, "p%d-%d", &p, &i); err != nil || i != next[p] {
				t.Fatalf("message %q out of its poster's order (want p%d-%d)", text, p, next[p])
			}
			next[p]++
		}
	})

	t.Run("DeleteOnASeenOnB", func(t *testing.T) {
		// One person (one cookie jar) posts and deletes on node A.
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar, Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		form := func(path string, v url.Values) int {
			t.Helper()
			resp, err := client.PostForm(a.URL+path, v)
			if err != nil {
				t.Fatalf("POST %s: %v", path, err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		onB := openSSE(t, b.URL+"/chat/erase/events?after=0", "")
		if code := form("/chat/erase/messages", url.Values{"message": {"a secret slip"}}); code != http.StatusSeeOther {
			t.Fatalf("post: %d", code)
		}
		if ev := onB.Next(t, 5*time.Second); ev.Seq != 1 {
			t.Fatalf("node B got %+v, want the message", ev)
		}
		// Someone else may not; the author may.
		if code := (func() int {
			resp, err := http.PostForm(a.URL+"/chat/erase/messages/1/delete", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		})(); code != http.StatusForbidden {
			t.Errorf("a stranger's deletion: %d, want 403", code)
		}
		if code := form("/chat/erase/messages/1/delete", nil); code != http.StatusSeeOther {
			t.Fatalf("the author's deletion: %d, want 303", code)
		}
		ev := onB.Next(t, 5*time.Second)
		if ev.Seq != 2 || !strings.Contains(ev.Data, `<hx-partial hx-target="#msg-1" hx-swap="outerHTML">`) {
			t.Fatalf("node B got %+v, want the deletion record", ev)
		}
		// Node B's pages and replays have the placeholder, never the text.
		resp, err := http.Get(b.URL + "/chat/erase/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(page), "secret slip") || !strings.Contains(string(page), "Message deleted") {
			t.Errorf("node B's room page after the deletion: %.800s", page)
		}
		replay := openSSE(t, b.URL+"/chat/erase/events?after=0", "")
		for _, ev := range replay.Collect(t, 2, 5*time.Second) {
			if strings.Contains(ev.Data, "secret slip") {
				t.Errorf("node B replayed the deleted text: %s", ev.Data)
			}
		}
	})

	t.Run("ClientMovesFromAToB", func(t *testing.T) {
		onA := openSSE(t, a.URL+"/chat/move/events?after=0", "")
		for i := range 5 {
			a.post(t, "move", "before "+strconv.Itoa(i))
		}
		got := onA.Collect(t, 5, 5*time.Second)
		onA.Close()
		for i := range 5 {
			a.post(t, "move", "while away "+strconv.Itoa(i))
		}
		// The stale ?after=0 loses to the header.
		onB := openSSE(t, b.URL+"/chat/move/events?after=0", got[len(got)-1].ID)
		b.post(t, "move", "on B")
		evs := onB.Collect(t, 6, 5*time.Second)
		if ids := eventSeqs(evs); !slices.Equal(ids, []int64{6, 7, 8, 9, 10, 11}) {
			t.Fatalf("after moving: ids %v, want 6..11", ids)
		}
		if textOf(evs[5].Data) != "on B" {
			t.Fatalf("last event %q, want the post on B", textOf(evs[5].Data))
		}
	})
}

// postMany posts n messages "pP-I" to room, one after another.
func postMany(base, room string, p, n int) error {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range n {
		resp, err := c.PostForm(base+"/chat/"+room+"/messages", url.Values{"message": {fmt.Sprintf("p%d-%d", p, i)}})
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			return fmt.Errorf("post p%d-%d: status %d", p, i, resp.StatusCode)
		}
	}
	return nil
}

// Redis goes away mid-run: posts answer 503 (never success), /healthz says
// unhealthy, open streams stay up with their heartbeats; Redis comes back
// and everything resumes by itself with nothing acknowledged lost.
func TestRedisOutage(t *testing.T) {
	r := redistest.Start(t, redistest.Options{AppendOnly: true})
	a := startServer(t, "-redis", r.URL())
	b := startServer(t, "-redis", r.URL())
	subs := []*sseClient{
		openSSE(t, a.URL+"/chat/outage/events?after=0", ""),
		openSSE(t, b.URL+"/chat/outage/events?after=0", ""),
	}
	var acked []string
	for i := range 3 {
		text := "before " + strconv.Itoa(i)
		a.post(t, "outage", text)
		acked = append(acked, text)
	}

	r.Stop()
	for _, n := range []*server{a, b} {
		status, body, took := tryPost(t, n.URL, "outage", "during the outage")
		if status != http.StatusServiceUnavailable {
			t.Fatalf("POST while Redis is down: status %d, want 503", status)
		}
		if !strings.Contains(body, "unavailable") {
			t.Errorf("503 page does not say the chat is unavailable:\n%s", body)
		}
		if took > 3*time.Second {
			t.Errorf("POST took %v to fail; a dead Redis should fail fast", took)
		}
		if code := getStatus(t, n.URL+"/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("/healthz while Redis is down: %d, want 503", code)
		}
	}
	// Open streams stay up and keep their heartbeats (1 s here).
	for i, s := range subs {
		for range 2 {
			select {
			case <-s.Pings:
			case err := <-s.Done:
				t.Fatalf("stream %d ended during the outage: %v", i, err)
			case <-time.After(5 * time.Second):
				t.Fatalf("stream %d: no heartbeat during the outage", i)
			}
		}
	}

	r.Start()
	// Posting resumes by itself: the first post after Redis answers PING
	// again may still meet a stale connection; within seconds all succeed.
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _, _ := tryPost(t, b.URL, "outage", "after 0")
		if status == http.StatusSeeOther {
			acked = append(acked, "after 0")
			break
		}
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("POST after Redis came back: status %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 1; i < 5; i++ {
		text := "after " + strconv.Itoa(i)
		[]*server{a, b}[i%2].post(t, "outage", text)
		acked = append(acked, text)
	}
	if code := getStatus(t, a.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after Redis came back: %d, want 200", code)
	}
	// Both subscribers, whose streams never closed, see every acknowledged
	// message once and in order.
	for i, s := range subs {
		evs := s.Collect(t, len(acked), 15*time.Second)
		texts := make([]string, len(evs))
		for j, ev := range evs {
			if ev.Seq != int64(j+1) {
				t.Fatalf("subscriber %d: event %d has id %s", i, j, ev.ID)
			}
			texts[j] = textOf(ev.Data)
		}
		if !slices.Equal(texts, acked) {
			t.Fatalf("subscriber %d saw %q, want %q", i, texts, acked)
		}
	}
}

// tryPost posts a message and returns the status, body and time taken.
func tryPost(t *testing.T, base, room, text string) (int, string, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := time.Now()
	resp, err := c.PostForm(base+"/chat/"+room+"/messages", url.Values{"message": {text}})
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), time.Since(start)
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
