package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// WaitTimeout bounds every wait of the contract for a watcher's deliveries.
const WaitTimeout = 10 * time.Second

// testEpochStable: every message of a room, as Append, Since and Recent
// return it, carries the same epoch, and it is a valid cursor epoch.
func testEpochStable(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	var epoch string
	for i := 1; i <= 3; i++ {
		m, err := s.Append(t.Context(), msg("lobby", fmt.Sprintf("lobby %d", i)))
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		if i == 1 {
			epoch = m.Epoch
		}
		if m.Epoch == "" || m.Epoch != epoch {
			t.Errorf("Append #%d: Epoch = %q, want %q like #1, not empty", i, m.Epoch, epoch)
		}
	}
	if c, ok := chat.ParseCursor("1-" + epoch); !ok || c.Epoch != epoch {
		t.Errorf("Epoch %q is not a cursor's epoch (1 to %d lower-case letters and digits)", epoch, chat.MaxEpochLen)
	}
	since, err := s.Since(t.Context(), "lobby", 0, 10)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	recent, err := s.Recent(t.Context(), "lobby", 2)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	checkSeqs(t, "Since(0, 10)", since, "lobby", span(1, 3))
	checkSeqs(t, "Recent(2)", recent, "lobby", span(2, 3))
	for _, m := range slices.Concat(since, recent) {
		if m.Epoch != epoch {
			t.Errorf("seq %d read back with Epoch %q, want %q as Append returned", m.Seq, m.Epoch, epoch)
		}
	}
}

// recorder is a watcher that records what it is given, notes whether it was
// ever called concurrently with itself, and passes each message on to
// seen, when set, for checks that call the store (a watcher must not).
type recorder struct {
	in      atomic.Int32
	overlap atomic.Bool
	seen    chan chat.Message // buffered; nil: none

	mu   sync.Mutex
	msgs []chat.Message
}

func (r *recorder) fn(m chat.Message) {
	if r.in.Add(1) != 1 {
		r.overlap.Store(true)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	if r.seen != nil {
		select {
		case r.seen <- m:
		default: // the check then reports the message missing
		}
	}
	r.in.Add(-1)
}

func (r *recorder) got() []chat.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// wait waits until r has been given n messages (failing the test after
// WaitTimeout) and returns all it was given.
func (r *recorder) wait(t *testing.T, what string, n int) []chat.Message {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		got := r.got()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages delivered within %v, want %d", what, len(got), WaitTimeout, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// check waits for len(want) deliveries and fails the test unless r was
// given exactly the seqs want, in order, of room and epoch, each the
// message Append returned for its seq (sent; nil: not checked), and never
// concurrently.
func (r *recorder) check(t *testing.T, what, room, epoch string, want []int64, sent map[int64]chat.Message) {
	t.Helper()
	got := r.wait(t, what, len(want))
	if !equalSeqs(seqs(got), want) {
		t.Errorf("%s: delivered %d messages %s, want exactly %s in order", what, len(got), summary(seqs(got)), summary(want))
	}
	for _, m := range got {
		if m.Room != room || m.Epoch != epoch {
			t.Errorf("%s: seq %d delivered with Room %q, Epoch %q; want %q, %q", what, m.Seq, m.Room, m.Epoch, room, epoch)
			break
		}
		if a, ok := sent[m.Seq]; sent != nil && (!ok || a.Text != m.Text || a.Author != m.Author || a.AuthorKey != m.AuthorKey || !a.Time.Equal(m.Time)) {
			t.Errorf("%s: seq %d delivered as %+v, want %+v as Append returned it", what, m.Seq, m, a)
			break
		}
	}
	if r.overlap.Load() {
		t.Errorf("%s: watcher was called concurrently with itself", what)
	}
}

func summary(s []int64) string {
	if len(s) <= 12 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v…%v", s[:6], s[len(s)-6:])
}

// testWatchInOrder: posters append to one room at once; each of its two
// watchers is given every message once, in seq order, with the room's
// epoch, never concurrently, and each already readable by Since. A watcher
// of another room gets only that room's messages.
func testWatchInOrder(t *testing.T, open OpenFunc) {
	const (
		posters = 8
		each    = 50
		total   = posters * each
		asides  = 10
	)
	s := newStore(t, open, Retention)
	first := &recorder{seen: make(chan chat.Message, total)}
	var second, aside recorder
	defer s.Watch("crowd", first.fn)()
	defer s.Watch("crowd", second.fn)()
	defer s.Watch("aside", aside.fn)()

	// Since is called for each message the first watcher got, after it
	// got it: the message must be there.
	visible := make(chan error, 1)
	go func() {
		var errs []error
		deadline := time.After(WaitTimeout)
		for i := range total {
			var m chat.Message
			select {
			case m = <-first.seen:
			case <-deadline:
				visible <- fmt.Errorf("Since checked %d watched messages within %v, want %d", i, WaitTimeout, total)
				return
			}
			got, err := s.Since(t.Context(), "crowd", m.Seq-1, 1)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("Since(%d, 1) after seq %d was watched: %w", m.Seq-1, m.Seq, err))
			case len(got) != 1 || got[0].Seq != m.Seq || got[0].Epoch != m.Epoch || got[0].Text != m.Text:
				errs = append(errs, fmt.Errorf("Since(%d, 1) after seq %d was watched = %v (epochs %v), want it", m.Seq-1, m.Seq, seqs(got), epochs(got)))
			}
		}
		if len(errs) > 0 {
			visible <- fmt.Errorf("%d watched messages not visible to Since, the first: %w", len(errs), errs[0])
			return
		}
		visible <- nil
	}()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		sent  = make(map[int64]chat.Message, total)
		aSent = make(map[int64]chat.Message, asides)
		errs  []error
	)
	for p := range posters {
		wg.Go(func() {
			for i := range each {
				m, err := s.Append(t.Context(), msg("crowd", fmt.Sprintf("p%d-%d", p, i)))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					sent[m.Seq] = m
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i := range asides {
			m, err := s.Append(t.Context(), msg("aside", fmt.Sprintf("aside %d", i)))
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				aSent[m.Seq] = m
			}
			mu.Unlock()
		}
	})
	wg.Wait()
	for _, err := range errs {
		t.Fatalf("Append: %v", err)
	}
	epoch := sent[1].Epoch
	first.check(t, "first watcher of crowd", "crowd", epoch, span(1, total), sent)
	second.check(t, "second watcher of crowd", "crowd", epoch, span(1, total), sent)
	aside.check(t, "watcher of aside", "aside", aSent[1].Epoch, span(1, asides), aSent)
	if err := <-visible; err != nil {
		t.Error(err)
	}
}

func epochs(msgs []chat.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Epoch)
	}
	return out
}

// testWatchStop: once stop returns, the watcher is given nothing more,
// while another watcher of the room goes on; stop may be called twice, and
// from the watcher itself.
func testWatchStop(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	var stopped, marker recorder
	stop := s.Watch("lobby", stopped.fn)
	defer s.Watch("lobby", marker.fn)()
	var (
		selfStop func()
		ready    = make(chan struct{})
		calls    atomic.Int32
	)
	selfStop = s.Watch("lobby", func(chat.Message) {
		<-ready // selfStop is set
		calls.Add(1)
		selfStop()
	})
	close(ready)
	appendN(t, s, "lobby", 1)
	got := stopped.wait(t, "watcher before stop", 1)
	stop()
	stop() // a second call is harmless
	appendN(t, s, "lobby", 2)
	marker.wait(t, "other watcher", 3) // seqs 2 and 3 have been delivered
	if got := seqs(stopped.got()); !equalSeqs(got, []int64{1}) {
		t.Errorf("stopped watcher got %v, want only [1]", got)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("watcher that stopped itself was called %d times, want 1", got)
	}
	checkSeqs(t, "watcher before stop", got, "lobby", []int64{1})
}
