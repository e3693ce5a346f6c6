package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Four posters post into one room; the server is killed with SIGKILL mid-run
// and restarted on the same SQLite file. Every POST that was answered with
// success is in the history, in order; seq continues; and a client that
// reconnects with its Last-Event-ID gets exactly what it missed.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hxchat.db")
	addr := freeAddr(t)
	first := startServer(t, "-addr", addr, "-db", db)
	room := first.URL + "/chat/crash"
	live := openSSE(t, room+"/events?after=0", "")

	const posters = 4
	var (
		mu    sync.Mutex
		acked = make([][]string, posters) // per poster, in the order acknowledged
		count int
	)
	killAt := 200 + int(time.Now().UnixNano()%100) // somewhere mid-run
	killed := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				text := fmt.Sprintf("p%d-%d", p, i)
				resp, err := client.PostForm(room+"/messages", url.Values{"message": {text}})
				if err != nil {
					return // the server is gone: this one was not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusSeeOther {
					return
				}
				mu.Lock()
				acked[p] = append(acked[p], text)
				count++
				if count == killAt {
					close(killed)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("posters did not reach the kill point")
	}
	first.Kill(t)
	wg.Wait()
	mu.Lock()
	total := count
	mu.Unlock()

	// What the live client saw before the kill.
	var seen []sseEvent
drain:
	for {
		select {
		case ev := <-live.Events:
			seen = append(seen, ev)
		case <-live.Done:
			// The reader queued every event before it reported the end.
			for len(live.Events) > 0 {
				seen = append(seen, <-live.Events)
			}
			break drain
		case <-time.After(5 * time.Second):
			t.Fatal("the stream did not end after SIGKILL")
		}
	}
	if len(seen) == 0 {
		t.Fatal("the live client saw nothing before the kill")
	}

	waitGone(t, first.PID)
	second := startServer(t, "-addr", addr, "-db", db)
	history := openSSE(t, second.URL+"/chat/crash/events?after=0", "")
	// Everything stored: at least every acknowledged message, perhaps a few
	// that were committed while their answer was lost in the kill.
	var all []sseEvent
	for {
		ev, ok := nextWithin(history, time.Second)
		if !ok {
			break
		}
		all = append(all, ev)
	}
	if len(all) < total {
		t.Fatalf("history holds %d messages, %d were acknowledged", len(all), total)
	}
	pos := make(map[string]int, len(all))
	for i, ev := range all {
		if want := int64(i + 1); ev.Seq != want {
			t.Fatalf("history event %d has id %s, want seq %d (gap-free from 1)", i, ev.ID, want)
		}
		pos[textOf(ev.Data)] = i
	}
	for p, texts := range acked {
		last := -1
		for _, text := range texts {
			i, ok := pos[text]
			if !ok {
				t.Fatalf("acknowledged message %q is lost", text)
			}
			if i < last {
				t.Fatalf("poster %d's %q is out of order", p, text)
			}
			last = i
		}
	}

	// The reconnecting client gets exactly what it missed.
	lastSeen := seen[len(seen)-1].ID
	resumed := openSSE(t, second.URL+"/chat/crash/events?after=0", lastSeen)
	n := int(seen[len(seen)-1].Seq)
	missed := resumed.Collect(t, len(all)-n, 10*time.Second)
	if got, want := eventSeqs(missed), eventSeqs(all[n:]); !slices.Equal(got, want) {
		t.Fatalf("resumed after %s: got ids %v, want %v", lastSeen, got, want)
	}

	// Seq continues.
	second.post(t, "crash", "after the restart")
	if ev := resumed.Next(t, 5*time.Second); ev.Seq != int64(len(all)+1) || textOf(ev.Data) != "after the restart" {
		t.Fatalf("first post after restart: %+v, want seq %d", ev, len(all)+1)
	}
	t.Logf("%d acknowledged, %d stored, killed after %d; live client had seen %d", total, len(all), killAt, len(seen))
}

func nextWithin(c *sseClient, d time.Duration) (sseEvent, bool) {
	select {
	case ev := <-c.Events:
		return ev, true
	case <-time.After(d):
		return sseEvent{}, false
	}
}

// eventSeqs is the seqs of evs (their ids without the epoch).
func eventSeqs(evs []sseEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

// waitGone waits until the process has been reaped.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
