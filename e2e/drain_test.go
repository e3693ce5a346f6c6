package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat/redis/redistest"
)

// Two nodes on one Redis. A subscriber streams from node A; node A gets
// SIGTERM while messages are posted to node B. The subscriber, resuming on
// node B with its Last-Event-ID, receives every message exactly once.
func TestDrainMovesSubscriberToOtherNode(t *testing.T) {
	r := redistest.Start(t, redistest.Options{})
	a := startServer(t, "-redis", r.URL(), "-drain-delay", "500ms")
	b := startServer(t, "-redis", r.URL())
	const total = 60

	posted := make(chan error, 1)
	go func() {
		for i := range total {
			if status, _, err := tryPostQuiet(b.URL, "drain", "m"+strconv.Itoa(i)); status != http.StatusSeeOther {
				posted <- fmt.Errorf("post %d on node B: status %d (%v)", i, status, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		posted <- nil
	}()

	onA := openSSE(t, a.URL+"/chat/drain/events?after=0", "")
	var got []sseEvent
	for len(got) < 10 {
		got = append(got, onA.Next(t, 5*time.Second))
	}
	if err := syscall.Kill(a.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Node A ends the stream; read what it delivered until then.
	for ended := false; !ended; {
		select {
		case ev := <-onA.Events:
			got = append(got, ev)
		case <-onA.Done:
			for len(onA.Events) > 0 {
				got = append(got, <-onA.Events)
			}
			ended = true
		case <-time.After(5 * time.Second):
			t.Fatal("node A did not end the stream after SIGTERM")
		}
	}
	// The browser's reconnect, now answered by node B.
	onB := openSSE(t, b.URL+"/chat/drain/events?after=0", got[len(got)-1].ID)
	if err := <-posted; err != nil {
		t.Fatal(err)
	}
	got = append(got, onB.Collect(t, total-len(got), 10*time.Second)...)
	for i, ev := range got {
		if ev.Seq != int64(i+1) || textOf(ev.Data) != "m"+strconv.Itoa(i) {
			t.Fatalf("event %d = id %s text %q; want id %d text m%d (each once, in order)", i, ev.ID, textOf(ev.Data), i+1, i)
		}
	}
	select {
	case ev := <-onB.Events:
		t.Fatalf("extra event %s", ev.ID)
	case <-time.After(300 * time.Millisecond):
	}
}

// tryPostQuiet posts without a testing.T (from a goroutine).
func tryPostQuiet(base, room, text string) (int, string, error) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(base+"/chat/"+room+"/messages", map[string][]string{"message": {text}})
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, "", nil
}
