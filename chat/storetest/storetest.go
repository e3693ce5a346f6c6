// Package storetest is the contract every chat.Store must meet, written once
// and run against each backend (memory, SQLite, Redis):
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, retention int) chat.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "chat.db"), sqlite.Options{Retention: retention})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// It imports package testing and is meant for tests only.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// OpenFunc returns a new, empty Store that keeps the newest retention
// messages of each room (retention is always > 0). Run closes every store it
// opens, so a second Close must return nil or an error wrapping
// chat.ErrClosed. OpenFunc registers any other cleanup (temporary files,
// server connections) with t.Cleanup, and calls t.Fatal when it cannot open.
type OpenFunc func(t *testing.T, retention int) chat.Store

// Retention is what Run passes to open when a case does not test retention:
// more messages than any case appends to one room.
const Retention = 10_000

// Run runs the Store contract against the stores open returns, each case in
// its own subtest with its own store: seqs, reads, retention, epochs,
// Watch (order, visibility, stop), scroll back and deletion.
//
// Times must survive a round trip to at least the millisecond.
func Run(t *testing.T, open OpenFunc) {
	t.Run("SeqStartsAtOneGapFree", func(t *testing.T) { testSeq(t, open) })
	t.Run("RoomsIndependent", func(t *testing.T) { testRooms(t, open) })
	t.Run("FieldsRoundTrip", func(t *testing.T) { testFields(t, open) })
	t.Run("SinceOldestFirst", func(t *testing.T) { testSince(t, open) })
	t.Run("SinceHugeLimit", func(t *testing.T) { testSinceHugeLimit(t, open) })
	t.Run("RecentNewestOldestFirst", func(t *testing.T) { testRecent(t, open) })
	t.Run("RetentionKeepsNewest", func(t *testing.T) { testRetention(t, open) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("UnicodeRoundTrip", func(t *testing.T) { testUnicode(t, open) })
	t.Run("LongBodyRoundTrip", func(t *testing.T) { testLongBody(t, open) })
	t.Run("ClosedReturnsErrClosed", func(t *testing.T) { testClosed(t, open) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, open) })
	t.Run("Secret", func(t *testing.T) { testSecret(t, open) })
	t.Run("RoomLister", func(t *testing.T) { testRoomLister(t, open) })
	t.Run("EpochStable", func(t *testing.T) { testEpochStable(t, open) })
	t.Run("WatchInOrder", func(t *testing.T) { testWatchInOrder(t, open) })
	t.Run("WatchStop", func(t *testing.T) { testWatchStop(t, open) })
	t.Run("BeforePagesBack", func(t *testing.T) { testBefore(t, open) })
	t.Run("DeleteErases", func(t *testing.T) { testDelete(t, open) })
	t.Run("DeleteRefused", func(t *testing.T) { testDeleteRefused(t, open) })
	t.Run("DeleteConcurrent", func(t *testing.T) { testDeleteConcurrent(t, open) })
}

// newStore opens a store and closes it when the test ends.
func newStore(t *testing.T, open OpenFunc, retention int) chat.Store {
	t.Helper()
	s := open(t, retention)
	if s == nil {
		t.Fatal("open returned a nil Store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, chat.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// appendN appends n messages "<room> 1" … "<room> n" to room and fails the
// test unless they get the seqs that follow the room's current newest.
func appendN(t *testing.T, s chat.Store, room string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := s.Append(t.Context(), msg(room, fmt.Sprintf("%s %d", room, i))); err != nil {
			t.Fatalf("Append(%q) #%d: %v", room, i, err)
		}
	}
}

// epoch is the time stamped on test messages: UTC, whole milliseconds.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func msg(room, text string) chat.Message {
	return chat.Message{Room: room, Author: "tester", AuthorKey: "0123456789ab", Text: text, Time: epoch}
}

// seqs returns the seqs of msgs, in order.
func seqs(msgs []chat.Message) []int64 {
	out := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

// span returns from, from+1, …, to (empty when to < from).
func span(from, to int64) []int64 {
	out := []int64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkSeqs fails the test unless msgs have exactly the seqs want, in that
// order, and each is the message appended with that seq to room (text
// "<room> <seq>", as appendN writes from an empty room).
func checkSeqs(t *testing.T, what string, msgs []chat.Message, room string, want []int64) {
	t.Helper()
	if got := seqs(msgs); !equalSeqs(got, want) {
		t.Errorf("%s seqs = %v, want %v", what, got, want)
		return
	}
	for _, m := range msgs {
		if m.Room != room {
			t.Errorf("%s: seq %d has Room %q, want %q", what, m.Seq, m.Room, room)
		}
		if want := fmt.Sprintf("%s %d", room, m.Seq); m.Text != want {
			t.Errorf("%s: seq %d has Text %q, want %q", what, m.Seq, m.Text, want)
		}
	}
}

func testSeq(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	for want := int64(1); want <= 20; want++ {
		m, err := s.Append(t.Context(), msg("lobby", fmt.Sprintf("lobby %d", want)))
		if err != nil {
			t.Fatalf("Append #%d: %v", want, err)
		}
		if m.Seq != want {
			t.Fatalf("Append #%d: Seq = %d, want %d", want, m.Seq, want)
		}
	}
	// A Seq set by the caller is ignored: the store assigns it.
	in := msg("lobby", "lobby 21")
	in.Seq = 999
	m, err := s.Append(t.Context(), in)
	if err != nil {
		t.Fatalf("Append with Seq preset: %v", err)
	}
	if got, want := m.Seq, int64(21); got != want {
		t.Errorf("Append with Seq 999 preset: Seq = %d, want %d", got, want)
	}
	got, err := s.Since(t.Context(), "lobby", 0, 100)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	checkSeqs(t, "Since(0, 100)", got, "lobby", span(1, 21))
}

func testRooms(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	// Interleave appends to three rooms: each counts from 1 on its own.
	rooms := []string{"a", "b", "한국어"}
	for i := int64(1); i <= 5; i++ {
		for _, room := range rooms[:2] {
			m, err := s.Append(t.Context(), msg(room, fmt.Sprintf("%s %d", room, i)))
			if err != nil {
				t.Fatalf("Append(%q): %v", room, err)
			}
			if m.Seq != i {
				t.Errorf("Append(%q) #%d: Seq = %d, want %d", room, i, m.Seq, i)
			}
		}
	}
	appendN(t, s, "한국어", 2)
	for room, want := range map[string][]int64{"a": span(1, 5), "b": span(1, 5), "한국어": span(1, 2), "empty": {}} {
		got, err := s.Since(t.Context(), room, 0, 100)
		if err != nil {
			t.Fatalf("Since(%q): %v", room, err)
		}
		checkSeqs(t, fmt.Sprintf("Since(%q, 0, 100)", room), got, room, want)
		got, err = s.Recent(t.Context(), room, 100)
		if err != nil {
			t.Fatalf("Recent(%q): %v", room, err)
		}
		checkSeqs(t, fmt.Sprintf("Recent(%q, 100)", room), got, room, want)
	}
}

func testFields(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	want := []chat.Message{
		{Room: "lobby", Seq: 1, Author: "alice", AuthorKey: "a1b2c3d4e5f6", Text: "hello\n\tworld", Time: epoch},
		// A message without a key (stored before people had keys).
		{Room: "lobby", Seq: 2, Author: "bob", Text: "no key", Time: epoch},
		// The longest key the hub accepts.
		{Room: "lobby", Seq: 3, Author: "carol", AuthorKey: strings.Repeat("f0", chat.MaxAuthorKeyLen/2), Text: "long key", Time: epoch},
	}
	for _, m := range want {
		got, err := s.Append(t.Context(), m)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		checkMessage(t, "Append", got, m)
	}
	list, err := s.Since(t.Context(), "lobby", 0, 10)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if len(list) != len(want) {
		t.Fatalf("Since returned %d messages, want %d", len(list), len(want))
	}
	for i := range want {
		checkMessage(t, "Since", list[i], want[i])
	}
	list, err = s.Recent(t.Context(), "lobby", 10)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	if len(list) != len(want) {
		t.Fatalf("Recent returned %d messages, want %d", len(list), len(want))
	}
	for i := range want {
		checkMessage(t, "Recent", list[i], want[i])
	}
}

func checkMessage(t *testing.T, what string, got, want chat.Message) {
	t.Helper()
	if got.Room != want.Room || got.Seq != want.Seq || got.Author != want.Author || got.AuthorKey != want.AuthorKey || got.Text != want.Text {
		t.Errorf("%s = {Room:%q Seq:%d Author:%q AuthorKey:%q Text:%q}, want {Room:%q Seq:%d Author:%q AuthorKey:%q Text:%q}",
			what, got.Room, got.Seq, got.Author, got.AuthorKey, got.Text, want.Room, want.Seq, want.Author, want.AuthorKey, want.Text)
	}
	if !got.Time.Equal(want.Time) {
		t.Errorf("%s: Time = %v, want %v", what, got.Time, want.Time)
	}
}

func testSince(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	appendN(t, s, "lobby", 10)
	for _, tc := range []struct {
		name         string
		after        int64
		limit        int
		wantFrom, to int64 // want seqs wantFrom..to; empty when to < wantFrom
	}{
		{"AllOldestFirst", 0, 100, 1, 10},
		{"AfterSkipsOlder", 3, 100, 4, 10},
		{"LimitKeepsOldest", 0, 4, 1, 4},
		{"AfterAndLimit", 3, 4, 4, 7},
		{"LimitReachesNewest", 7, 3, 8, 10},
		{"LastOne", 9, 100, 10, 10},
		{"AfterNewestNone", 10, 100, 1, 0},
		{"AfterBeyondNewestNone", 50, 100, 1, 0},
		{"LimitZeroNone", 0, 0, 1, 0},
		{"NegativeAfterAll", -5, 100, 1, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Since(t.Context(), "lobby", tc.after, tc.limit)
			if err != nil {
				t.Fatalf("Since(%d, %d): %v", tc.after, tc.limit, err)
			}
			checkSeqs(t, fmt.Sprintf("Since(%d, %d)", tc.after, tc.limit), got, "lobby", span(tc.wantFrom, tc.to))
		})
	}
	t.Run("UnknownRoomNone", func(t *testing.T) {
		got, err := s.Since(t.Context(), "nobody-here", 0, 100)
		if err != nil {
			t.Fatalf("Since: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("Since in an unknown room = %v, want none", seqs(got))
		}
	})
}

// testSinceHugeLimit covers callers that mean "everything" by a limit of
// math.MaxInt: the store must not overflow computing the last seq to read.
func testSinceHugeLimit(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	appendN(t, s, "lobby", 5)
	for _, after := range []int64{0, 1, 3} {
		// A panic here would end the whole test binary; report it instead.
		got, err := noPanic(func() ([]chat.Message, error) {
			return s.Since(t.Context(), "lobby", after, math.MaxInt)
		})
		if err != nil {
			t.Errorf("Since(%d, MaxInt): %v", after, err)
			continue
		}
		checkSeqs(t, fmt.Sprintf("Since(%d, MaxInt)", after), got, "lobby", span(after+1, 5))
	}
	got, err := noPanic(func() ([]chat.Message, error) {
		return s.Recent(t.Context(), "lobby", math.MaxInt)
	})
	if err != nil {
		t.Fatalf("Recent(MaxInt): %v", err)
	}
	checkSeqs(t, "Recent(MaxInt)", got, "lobby", span(1, 5))
}

// noPanic calls f and turns a panic into an error.
func noPanic(f func() ([]chat.Message, error)) (msgs []chat.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

func testRecent(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	appendN(t, s, "lobby", 10)
	for _, tc := range []struct {
		name         string
		n            int
		wantFrom, to int64
	}{
		{"NewestThree", 3, 8, 10},
		{"NewestOne", 1, 10, 10},
		{"ExactlyAll", 10, 1, 10},
		{"MoreThanAll", 100, 1, 10},
		{"ZeroNone", 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Recent(t.Context(), "lobby", tc.n)
			if err != nil {
				t.Fatalf("Recent(%d): %v", tc.n, err)
			}
			checkSeqs(t, fmt.Sprintf("Recent(%d)", tc.n), got, "lobby", span(tc.wantFrom, tc.to))
		})
	}
	t.Run("UnknownRoomNone", func(t *testing.T) {
		got, err := s.Recent(t.Context(), "nobody-here", 10)
		if err != nil {
			t.Fatalf("Recent: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("Recent in an unknown room = %v, want none", seqs(got))
		}
	})
}

func testRetention(t *testing.T, open OpenFunc) {
	const retention = 5
	s := newStore(t, open, retention)
	appendN(t, s, "busy", 12) // keeps 8..12
	appendN(t, s, "quiet", 3) // under the limit: keeps all
	appendN(t, s, "exact", 5) // at the limit: keeps all
	appendN(t, s, "wrap", 10) // exactly twice the limit: keeps 6..10
	for _, tc := range []struct {
		name     string
		room     string
		call     func() ([]chat.Message, error)
		from, to int64
	}{
		{"RecentAll", "busy", func() ([]chat.Message, error) { return s.Recent(t.Context(), "busy", 100) }, 8, 12},
		{"RecentTwo", "busy", func() ([]chat.Message, error) { return s.Recent(t.Context(), "busy", 2) }, 11, 12},
		{"SinceZeroSkipsTrimmed", "busy", func() ([]chat.Message, error) { return s.Since(t.Context(), "busy", 0, 100) }, 8, 12},
		{"SinceTrimmedCursorSkipsTrimmed", "busy", func() ([]chat.Message, error) { return s.Since(t.Context(), "busy", 2, 100) }, 8, 12},
		{"SinceTrimmedCursorLimit", "busy", func() ([]chat.Message, error) { return s.Since(t.Context(), "busy", 2, 2) }, 8, 9},
		{"SinceRetainedCursor", "busy", func() ([]chat.Message, error) { return s.Since(t.Context(), "busy", 9, 2) }, 10, 11},
		{"QuietRoomUntouched", "quiet", func() ([]chat.Message, error) { return s.Recent(t.Context(), "quiet", 100) }, 1, 3},
		{"ExactRoomUntouched", "exact", func() ([]chat.Message, error) { return s.Since(t.Context(), "exact", 0, 100) }, 1, 5},
		{"WrappedTwice", "wrap", func() ([]chat.Message, error) { return s.Since(t.Context(), "wrap", 0, 100) }, 6, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			checkSeqs(t, tc.name, got, tc.room, span(tc.from, tc.to))
		})
	}
	t.Run("SeqContinuesAfterTrim", func(t *testing.T) {
		m, err := s.Append(t.Context(), msg("busy", "busy 13"))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if got, want := m.Seq, int64(13); got != want {
			t.Errorf("Append after trimming: Seq = %d, want %d", got, want)
		}
		got, err := s.Recent(t.Context(), "busy", 100)
		if err != nil {
			t.Fatalf("Recent: %v", err)
		}
		checkSeqs(t, "Recent after one more", got, "busy", span(9, 13))
	})
}

func testConcurrent(t *testing.T, open OpenFunc) {
	const (
		writers = 8
		each    = 250
		total   = writers * each
	)
	s := newStore(t, open, Retention)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		bySeq  = make(map[int64]string, total) // seq → text Append returned it for
		errs   []error
		rooms  = [2]string{"crowd", "aside"}
		asides = make([]int64, 0, writers*each/10)
	)
	for w := range writers {
		wg.Go(func() {
			last := int64(0)
			for i := range each {
				// Every tenth append of writer 0 goes to another room: it
				// must not take a seq of the crowded room.
				room := rooms[0]
				if w == 0 && i%10 == 0 {
					room = rooms[1]
				}
				text := fmt.Sprintf("w%d-%d", w, i)
				m, err := s.Append(t.Context(), msg(room, text))
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("writer %d append %d: %w", w, i, err))
				case room == rooms[1]:
					asides = append(asides, m.Seq)
				default:
					if prev, dup := bySeq[m.Seq]; dup {
						errs = append(errs, fmt.Errorf("seq %d given to both %q and %q", m.Seq, prev, text))
					}
					bySeq[m.Seq] = text
					if m.Seq <= last {
						errs = append(errs, fmt.Errorf("writer %d: seq %d after its own %d", w, m.Seq, last))
					}
					last = m.Seq
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	wantCrowd := int64(total - each/10)
	if got := int64(len(bySeq)); got != wantCrowd {
		t.Errorf("distinct seqs in %q = %d, want %d", rooms[0], got, wantCrowd)
	}
	for seq := int64(1); seq <= wantCrowd; seq++ {
		if _, ok := bySeq[seq]; !ok {
			t.Errorf("seq %d of %q was never returned by Append", seq, rooms[0])
		}
	}
	stored, err := s.Since(t.Context(), rooms[0], 0, total)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if got := seqs(stored); !equalSeqs(got, span(1, wantCrowd)) {
		t.Fatalf("Since after concurrent appends: %d messages, seqs not 1..%d", len(got), wantCrowd)
	}
	for _, m := range stored {
		if want := bySeq[m.Seq]; m.Text != want {
			t.Errorf("stored seq %d has Text %q, want %q (the text Append returned that seq for)", m.Seq, m.Text, want)
		}
	}
	// Writer 0 appended to the aside room alone, so its seqs are 1..n in order.
	if got, want := asides, span(1, each/10); !equalSeqs(got, want) {
		t.Errorf("seqs in %q = %v, want %v", rooms[1], got, want)
	}
}

func testUnicode(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	for _, tc := range []struct{ name, room, author, text string }{
		{"Korean", "한국어", "김철수", "안녕하세요, 여러분! 반갑습니다."},
		{"Emoji", "lobby", "👩‍💻 dev", "ship it 🚀🎉 👨‍👩‍👧‍👦 👍🏽 🇰🇷"},
		{"Mixed", "team-7", "Zoë", "naïve café — 日本語 • Ελληνικά • العربية\n\tindented line"},
		{"HTMLLooking", "lobby", "<b>mallory</b>", `<script>alert("x")</script> & "quotes" 'too'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := chat.Message{Room: tc.room, Author: tc.author, AuthorKey: "c0ffee00beef", Text: tc.text, Time: epoch}
			got, err := s.Append(t.Context(), want)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			want.Seq = got.Seq
			checkMessage(t, "Append", got, want)
			recent, err := s.Recent(t.Context(), tc.room, 1)
			if err != nil {
				t.Fatalf("Recent: %v", err)
			}
			if len(recent) != 1 {
				t.Fatalf("Recent(1) returned %d messages, want 1", len(recent))
			}
			checkMessage(t, "Recent", recent[0], want)
			since, err := s.Since(t.Context(), tc.room, got.Seq-1, 1)
			if err != nil {
				t.Fatalf("Since: %v", err)
			}
			if len(since) != 1 {
				t.Fatalf("Since returned %d messages, want 1", len(since))
			}
			checkMessage(t, "Since", since[0], want)
		})
	}
}

func testLongBody(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	// chat.MaxMessageLen characters, most of them multi-byte (3 and 4 bytes).
	text := strings.Repeat("가😀a\n", chat.MaxMessageLen/4)
	if n := len([]rune(text)); n != chat.MaxMessageLen {
		t.Fatalf("test body has %d runes, want %d", n, chat.MaxMessageLen)
	}
	want := chat.Message{Room: "lobby", Seq: 1, Author: "long", Text: text, Time: epoch}
	if _, err := s.Append(t.Context(), want); err != nil {
		t.Fatalf("Append: %v", err)
	}
	got, err := s.Since(t.Context(), "lobby", 0, 1)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Since returned %d messages, want 1", len(got))
	}
	if got[0].Text != text {
		t.Errorf("long body came back with %d bytes / %d runes, want %d bytes / %d runes (or same length, different content)",
			len(got[0].Text), len([]rune(got[0].Text)), len(text), chat.MaxMessageLen)
	}
	checkMessage(t, "Since", got[0], want)
}

func testClosed(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	appendN(t, s, "lobby", 3)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	if m, err := s.Append(ctx, msg("lobby", "late")); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Append after Close = (seq %d, %v), want an error wrapping chat.ErrClosed", m.Seq, err)
	}
	if got, err := s.Since(ctx, "lobby", 0, 10); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Since after Close = (%d messages, %v), want an error wrapping chat.ErrClosed", len(got), err)
	}
	if got, err := s.Recent(ctx, "lobby", 10); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Recent after Close = (%d messages, %v), want an error wrapping chat.ErrClosed", len(got), err)
	}
	if err := s.Close(); err != nil && !errors.Is(err, chat.ErrClosed) {
		t.Errorf("second Close = %v, want nil or an error wrapping chat.ErrClosed", err)
	}
}

func testCancelled(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	appendN(t, s, "lobby", 2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if m, err := s.Append(ctx, msg("lobby", "lobby 3")); err == nil {
		t.Errorf("Append with a cancelled context stored seq %d, want an error", m.Seq)
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: %v, want an error wrapping context.Canceled", err)
	}
	if got, err := s.Since(ctx, "lobby", 0, 10); err == nil {
		t.Errorf("Since with a cancelled context returned %d messages, want an error", len(got))
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Since with a cancelled context: %v, want an error wrapping context.Canceled", err)
	}
	if got, err := s.Recent(ctx, "lobby", 10); err == nil {
		t.Errorf("Recent with a cancelled context returned %d messages, want an error", len(got))
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Recent with a cancelled context: %v, want an error wrapping context.Canceled", err)
	}
	// The failed Append stored nothing and took no seq.
	m, err := s.Append(t.Context(), msg("lobby", "lobby 3"))
	if err != nil {
		t.Fatalf("Append after the cancelled one: %v", err)
	}
	if got, want := m.Seq, int64(3); got != want {
		t.Errorf("Append after a cancelled Append: Seq = %d, want %d", got, want)
	}
}

// testSecret checks chat.SecretKeeper for stores that implement it: a
// SecretLen-byte secret, the same on every call, and the same for callers
// racing on the first call. Whether it survives a reopen, or is shared by
// two Stores on one server, depends on the backend and is tested there.
func testSecret(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	keeper, ok := s.(chat.SecretKeeper)
	if !ok {
		t.Skipf("%T does not implement chat.SecretKeeper", s)
	}
	const callers = 8
	secrets := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { secrets[i], errs[i] = keeper.Secret(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent first Secret #%d: %v", i, err)
		}
	}
	first := secrets[0]
	if len(first) != chat.SecretLen {
		t.Fatalf("Secret is %d bytes long, want %d", len(first), chat.SecretLen)
	}
	if string(first) == string(make([]byte, chat.SecretLen)) {
		t.Errorf("Secret is all zero bytes, want random ones")
	}
	for i, got := range secrets {
		if string(got) != string(first) {
			t.Errorf("concurrent first Secret #%d = %x, want %x like #0", i, got, first)
		}
	}
	// The caller may keep (or scribble on) what it got.
	clear(secrets[1])
	again, err := keeper.Secret(t.Context())
	if err != nil {
		t.Fatalf("second Secret: %v", err)
	}
	if string(again) != string(first) {
		t.Errorf("second Secret = %x, want %x", again, first)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, err := keeper.Secret(t.Context()); !errors.Is(err, chat.ErrClosed) {
		t.Errorf("Secret after Close = (%x, %v), want an error wrapping chat.ErrClosed", got, err)
	}
}
