package chat_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// noLimit is a sink limit: the sink takes every event offered.
const noLimit = -1

// sink is a fake chat.Sink standing in for one connection's writer. It
// holds up to limit events not yet taken (noLimit: any number) and refuses
// more, as a full socket buffer does; drain takes what it holds and pumps
// the follower, as a writer does once it has room again. It keeps every
// event it accepted, in order, for the assertions.
type sink struct {
	mu      sync.Mutex
	limit   int
	held    int           // accepted since the last drain
	events  []*chat.Event // every event accepted, in order
	read    int           // events already returned by recv
	refused int           // Offer calls answered false
	ends    []error       // End calls
	f       *chat.Follower
	changed chan struct{} // a token after each accepted event or End
}

func newSink(limit int) *sink {
	return &sink{limit: limit, changed: make(chan struct{}, 1)}
}

// Offer implements chat.Sink. It never blocks.
func (s *sink) Offer(ev *chat.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit != noLimit && s.held >= s.limit {
		s.refused++
		return false
	}
	s.held++
	s.events = append(s.events, ev)
	s.signal()
	return true
}

// End implements chat.Sink.
func (s *sink) End(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ends = append(s.ends, err)
	s.signal()
}

func (s *sink) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// drain takes every event the sink holds, sets how many it may hold from
// now on, and pumps the follower (outside the sink's lock: the follower
// calls Offer under its own).
func (s *sink) drain(limit int) {
	s.mu.Lock()
	s.held, s.limit = 0, limit
	f := s.f
	s.mu.Unlock()
	if f != nil {
		f.Pump()
	}
}

// got returns a copy of the events accepted so far.
func (s *sink) got() []*chat.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*chat.Event(nil), s.events...)
}

// endErrs returns the errors End was called with.
func (s *sink) endErrs() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.ends...)
}

// refusals returns how many offers the sink refused.
func (s *sink) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// waitFor waits until cond holds for the events accepted so far, failing
// the test after wait. Inside a synctest bubble the wait is in fake time:
// it fails at once when nothing else can happen.
func (s *sink) waitFor(t *testing.T, what string, cond func([]*chat.Event) bool) []*chat.Event {
	t.Helper()
	deadline := time.After(wait)
	for {
		if evs := s.got(); cond(evs) {
			return evs
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("sink: %s: not within %v; got %s", what, wait, describe(s.got()))
			return nil
		}
	}
}

// waitN waits until the sink accepted at least n events and returns them.
func (s *sink) waitN(t *testing.T, n int) []*chat.Event {
	t.Helper()
	return s.waitFor(t, fmt.Sprintf("%d events", n), func(evs []*chat.Event) bool { return len(evs) >= n })
}

// follow follows room from its newest message into a sink that takes every
// event, closing the follower when the test ends.
func follow(t *testing.T, h *chat.Hub, room string) *sink {
	t.Helper()
	return followInto(t, h, room, chat.Cursor{}, false, newSink(noLimit))
}

// followFrom follows room from cursor from into a sink that takes every
// event, closing the follower when the test ends.
func followFrom(t *testing.T, h *chat.Hub, room string, from chat.Cursor) *sink {
	t.Helper()
	return followInto(t, h, room, from, true, newSink(noLimit))
}

// followInto follows room into s (see Hub.Follow), sets s.f, and closes
// the follower when the test ends.
func followInto(t *testing.T, h *chat.Hub, room string, from chat.Cursor, has bool, s *sink) *sink {
	t.Helper()
	f, err := h.Follow(t.Context(), room, from, has, s)
	if err != nil {
		t.Fatalf("Follow(%q, %v, %t): %v", room, from, has, err)
	}
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
	t.Cleanup(func() {
		// Bounded, so that a follower stuck holding a lock fails the
		// test instead of hanging it.
		done := make(chan struct{})
		go func() { f.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(wait):
			t.Errorf("Follower.Close in room %q did not return within %v", room, wait)
		}
	})
	return s
}

// cursorOf parses ev's ID, failing the test if it is not a cursor.
func cursorOf(t *testing.T, ev *chat.Event) chat.Cursor {
	t.Helper()
	c, ok := chat.ParseCursor(string(ev.ID))
	if !ok {
		t.Fatalf("event id %q is not a cursor", ev.ID)
	}
	return c
}

// The fragments the follower tests render, so that an event says what it
// is: a message ("msg SEQ-EPOCH"), a snapshot ("snapshot reset=BOOL
// SEQ-EPOCH,…"), a trimmed notice ("trimmed AFTER").
func renderMsg(m chat.Message) ([]byte, error) {
	return fmt.Appendf(nil, "msg %s", chat.Cursor{Epoch: m.Epoch, Seq: m.Seq}), nil
}

func renderSnapshot(msgs []chat.Message, reset bool) ([]byte, error) {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = chat.Cursor{Epoch: m.Epoch, Seq: m.Seq}.String()
	}
	return fmt.Appendf(nil, "snapshot reset=%t %s", reset, strings.Join(ids, ",")), nil
}

func renderTrimmed(after int64) ([]byte, error) {
	return fmt.Appendf(nil, "trimmed %d", after), nil
}

// followOpts are HubOptions rendering with the fragments above.
func followOpts(o chat.HubOptions) chat.HubOptions {
	o.Render, o.RenderSnapshot, o.RenderTrimmed = renderMsg, renderSnapshot, renderTrimmed
	return o
}

// describe lists events as "ID:HTML", for failure messages.
func describe(evs []*chat.Event) string {
	const most = 40
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(evs)))
	b.WriteString(" events [")
	for i, ev := range evs {
		if i == most {
			fmt.Fprintf(&b, " …%d more", len(evs)-most)
			break
		}
		if i > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "%s:%.60s", ev.ID, ev.HTML)
	}
	b.WriteString("]")
	return b.String()
}

// checkMessages checks that evs, what who got, are exactly the messages from..to of
// epoch, each once and in seq order, rendered by renderMsg with an ID that
// is the message's cursor.
func checkMessages(t *testing.T, who string, evs []*chat.Event, epoch string, from, to int64) {
	t.Helper()
	if want := int(to - from + 1); len(evs) != want {
		t.Errorf("%s got %d events, want %d (seqs %d..%d of epoch %q): %s", who, len(evs), want, from, to, epoch, describe(evs))
	}
	for i, ev := range evs {
		want := chat.Cursor{Epoch: epoch, Seq: from + int64(i)}
		c, ok := chat.ParseCursor(string(ev.ID))
		if !ok || c != want || string(ev.HTML) != "msg "+want.String() {
			t.Errorf("%s: event %d is %s:%q, want message %s (every seq once, in order): %s", who, i, ev.ID, ev.HTML, want, describe(evs))
			return
		}
	}
}

// recentReader reads a room's newest messages: a chat.Store, or a chat.Hub.
type recentReader interface {
	Recent(ctx context.Context, room string, n int) ([]chat.Message, error)
}

// epochOf returns the epoch of a room, as its newest message says.
func epochOf(t *testing.T, store recentReader, room string) string {
	t.Helper()
	m, err := store.Recent(t.Context(), room, 1)
	if err != nil || len(m) != 1 {
		t.Fatalf("Recent(%q, 1) = %v, %v; want the newest message", room, m, err)
	}
	return m[0].Epoch
}
