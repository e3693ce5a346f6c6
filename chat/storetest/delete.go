package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// The keys of the contract's authors: msg writes as author, an operator
// deletes as operator.
const (
	author   = "0123456789ab"
	other    = "ba9876543210"
	operator = "feedfacecafe"
)

// testBefore: pages back through a room, newest page first, to the first
// retained message.
func testBefore(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	appendN(t, s, "lobby", 25)
	for _, tc := range []struct {
		name     string
		before   int64
		n        int
		from, to int64
	}{
		{"NewestPage", 26, 10, 16, 25},
		{"MiddlePage", 16, 10, 6, 15},
		{"ShortLastPage", 6, 10, 1, 5},
		{"BeforeFirstNone", 1, 10, 1, 0},
		{"ZeroNone", 0, 10, 1, 0},
		{"NegativeNone", -5, 10, 1, 0},
		{"NoneAsked", 20, 0, 1, 0},
		{"BeyondNewestIsRecent", 1 << 40, 3, 23, 25},
		{"OneBefore", 2, 100, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Before(t.Context(), "lobby", tc.before, tc.n)
			if err != nil {
				t.Fatalf("Before(%d, %d): %v", tc.before, tc.n, err)
			}
			checkSeqs(t, fmt.Sprintf("Before(%d, %d)", tc.before, tc.n), got, "lobby", span(tc.from, tc.to))
			for _, m := range got {
				if m.Epoch == "" {
					t.Errorf("Before: seq %d has no Epoch", m.Seq)
				}
			}
		})
	}
	t.Run("UnknownRoomNone", func(t *testing.T) {
		got, err := s.Before(t.Context(), "nobody-here", 10, 10)
		if err != nil {
			t.Fatalf("Before: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("Before in an unknown room = %v, want none", seqs(got))
		}
	})
	t.Run("SkipsTrimmed", func(t *testing.T) {
		s := newStore(t, open, 5)
		appendN(t, s, "busy", 12) // keeps 8..12
		got, err := s.Before(t.Context(), "busy", 11, 10)
		if err != nil {
			t.Fatalf("Before: %v", err)
		}
		checkSeqs(t, "Before(11, 10) keeping 8..12", got, "busy", span(8, 10))
		got, err = s.Before(t.Context(), "busy", 8, 10)
		if err != nil {
			t.Fatalf("Before: %v", err)
		}
		checkSeqs(t, "Before(8, 10) keeping 8..12", got, "busy", []int64{})
	})
}

// deletion is an author's request to delete seq of room.
func deletion(room string, seq int64, by string) chat.Deletion {
	return chat.Deletion{Room: room, Seq: seq, By: by, Time: epoch.Add(time.Minute)}
}

// checkErased fails unless msgs are the room's messages 1..n as appendN
// wrote them, but the deleted ones, which must be placeholders (Deleted,
// no text), and the records, which must say what they deleted.
func checkErased(t *testing.T, what string, msgs []chat.Message, room string, deleted map[int64]bool, records map[int64]int64) {
	t.Helper()
	for _, m := range msgs {
		switch {
		case records[m.Seq] != 0:
			if m.Deletes != records[m.Seq] || m.Deleted || m.Text != "" {
				t.Errorf("%s: seq %d = Deletes %d, Deleted %v, Text %q; want a record deleting %d", what, m.Seq, m.Deletes, m.Deleted, m.Text, records[m.Seq])
			}
		case deleted[m.Seq]:
			if !m.Deleted || m.Text != "" || m.Deletes != 0 {
				t.Errorf("%s: seq %d = Deleted %v, Text %q, Deletes %d; want erased", what, m.Seq, m.Deleted, m.Text, m.Deletes)
			}
		default:
			if want := fmt.Sprintf("%s %d", room, m.Seq); m.Deleted || m.Deletes != 0 || m.Text != want {
				t.Errorf("%s: seq %d = Deleted %v, Deletes %d, Text %q; want %q untouched", what, m.Seq, m.Deleted, m.Deletes, m.Text, want)
			}
		}
		if m.Room != room || m.Epoch == "" {
			t.Errorf("%s: seq %d has Room %q, Epoch %q", what, m.Seq, m.Room, m.Epoch)
		}
	}
}

// testDelete: a deletion erases the text in every read, and appends a
// record, in order, that watchers get like any message.
func testDelete(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	var w recorder
	defer s.Watch("lobby", w.fn)()
	appendN(t, s, "lobby", 5)

	rec, err := s.Delete(t.Context(), deletion("lobby", 2, author))
	if err != nil {
		t.Fatalf("Delete(2) by its author: %v", err)
	}
	if rec.Seq != 6 || rec.Deletes != 2 || rec.Room != "lobby" || rec.AuthorKey != author || rec.Epoch == "" || rec.Text != "" || rec.Deleted {
		t.Errorf("Delete(2) = %+v, want the record: seq 6, Deletes 2, AuthorKey %q, an epoch, no text", rec, author)
	}
	// An operator deletes anyone's message, the newest too.
	op := deletion("lobby", 6-1, operator)
	op.Any = true
	rec2, err := s.Delete(t.Context(), op)
	if err != nil {
		t.Fatalf("Delete(5) by an operator: %v", err)
	}
	if rec2.Seq != 7 || rec2.Deletes != 5 || rec2.AuthorKey != operator {
		t.Errorf("operator's Delete(5) = seq %d, Deletes %d, AuthorKey %q; want seq 7, Deletes 5, %q", rec2.Seq, rec2.Deletes, rec2.AuthorKey, operator)
	}
	m, err := s.Append(t.Context(), msg("lobby", "lobby 8"))
	if err != nil || m.Seq != 8 {
		t.Fatalf("Append after deletions = seq %d, %v; want seq 8", m.Seq, err)
	}
	deleted := map[int64]bool{2: true, 5: true}
	records := map[int64]int64{6: 2, 7: 5}

	reads := map[string]func() ([]chat.Message, error){
		"Since(0)":       func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 0, 100) },
		"Since(1, 1)":    func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 1, 1) },
		"Since(4, 2)":    func() ([]chat.Message, error) { return s.Since(t.Context(), "lobby", 4, 2) },
		"Recent(100)":    func() ([]chat.Message, error) { return s.Recent(t.Context(), "lobby", 100) },
		"Recent(4)":      func() ([]chat.Message, error) { return s.Recent(t.Context(), "lobby", 4) },
		"Before(9, 100)": func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 9, 100) },
		"Before(6, 2)":   func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 6, 2) },
		"Before(3, 1)":   func() ([]chat.Message, error) { return s.Before(t.Context(), "lobby", 3, 1) },
	}
	want := map[string][]int64{
		"Since(0)": span(1, 8), "Since(1, 1)": {2}, "Since(4, 2)": {5, 6},
		"Recent(100)": span(1, 8), "Recent(4)": span(5, 8),
		"Before(9, 100)": span(1, 8), "Before(6, 2)": {4, 5}, "Before(3, 1)": {2},
	}
	for name, read := range reads {
		got, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !equalSeqs(seqs(got), want[name]) {
			t.Errorf("%s after deletions = %v, want %v", name, seqs(got), want[name])
		}
		checkErased(t, name, got, "lobby", deleted, records)
	}

	got := w.wait(t, "watcher of lobby", 8)
	if !equalSeqs(seqs(got), span(1, 8)) {
		t.Fatalf("watcher got seqs %v, want 1..8", seqs(got))
	}
	// A watcher got the records as they were appended; the messages it got
	// before they were deleted still had their text.
	checkErased(t, "watched", got[5:7], "lobby", nil, records)
}

// testDeleteRefused: who may not delete, and what does not exist, changes
// nothing.
func testDeleteRefused(t *testing.T, open OpenFunc) {
	s := newStore(t, open, 3)
	appendN(t, s, "lobby", 5) // keeps 3..5
	appendN(t, s, "other", 1)
	if _, err := s.Delete(t.Context(), deletion("lobby", 5, author)); err != nil { // seq 6
		t.Fatalf("Delete(5): %v", err)
	}
	notAuthor := deletion("lobby", 4, other)
	anyByOther := deletion("lobby", 7, other)
	anyByOther.Any = true
	for _, tc := range []struct {
		name string
		d    chat.Deletion
		want error
	}{
		{"OtherAuthor", notAuthor, chat.ErrNotAuthor},
		{"NoKey", deletion("lobby", 4, ""), chat.ErrNotAuthor},
		{"Trimmed", deletion("lobby", 2, author), chat.ErrNotFound},
		{"Zero", deletion("lobby", 0, author), chat.ErrNotFound},
		{"Negative", deletion("lobby", -1, author), chat.ErrNotFound},
		{"BeyondNewest", deletion("lobby", 99, author), chat.ErrNotFound},
		{"OperatorBeyondNewest", anyByOther, chat.ErrNotFound},
		{"UnknownRoom", deletion("nobody-here", 1, author), chat.ErrNotFound},
		{"ARecord", deletion("lobby", 6, author), chat.ErrNotFound},
		{"AlreadyDeleted", deletion("lobby", 5, author), chat.ErrAlreadyDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := s.Delete(t.Context(), tc.d)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Delete(%+v) = %+v, %v; want %v", tc.d, rec, err, tc.want)
			}
		})
	}
	got, err := s.Since(t.Context(), "lobby", 0, 100)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if !equalSeqs(seqs(got), span(4, 6)) {
		t.Fatalf("Since(0) after refused deletions = %v, want 4..6 (retention 3)", seqs(got))
	}
	checkErased(t, "Since(0) after refused deletions", got, "lobby", map[int64]bool{5: true}, map[int64]int64{6: 5})
	// Nothing refused took a seq.
	m, err := s.Append(t.Context(), msg("lobby", "lobby 7"))
	if err != nil || m.Seq != 7 {
		t.Errorf("Append after refused deletions = seq %d, %v; want seq 7", m.Seq, err)
	}
	t.Run("Closed", func(t *testing.T) {
		s := newStore(t, open, Retention)
		appendN(t, s, "lobby", 1)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := s.Delete(t.Context(), deletion("lobby", 1, author)); !errors.Is(err, chat.ErrClosed) {
			t.Errorf("Delete after Close = %v, want ErrClosed", err)
		}
		if _, err := s.Before(t.Context(), "lobby", 2, 1); !errors.Is(err, chat.ErrClosed) {
			t.Errorf("Before after Close = %v, want ErrClosed", err)
		}
	})
}

// testDeleteConcurrent: deletions racing appends keep the seqs gap-free and
// every record after what it deleted; racing deletions of one message
// append one record.
func testDeleteConcurrent(t *testing.T, open OpenFunc) {
	const n = 40
	s := newStore(t, open, Retention)
	var w recorder
	defer s.Watch("race", w.fn)()
	appendN(t, s, "race", n)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		records = map[int64]int64{}
		errs    []error
	)
	for i := range n {
		wg.Go(func() {
			seq := int64(i + 1)
			// Two deleters race for each even message.
			tries := 1
			if seq%2 == 0 {
				tries = 2
			}
			for range tries {
				rec, err := s.Delete(t.Context(), deletion("race", seq, author))
				mu.Lock()
				switch {
				case errors.Is(err, chat.ErrAlreadyDeleted):
				case err != nil:
					errs = append(errs, err)
				default:
					records[rec.Seq] = rec.Deletes
				}
				mu.Unlock()
			}
		})
		wg.Go(func() {
			if _, err := s.Append(t.Context(), msg("race", "more")); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatalf("racing Delete or Append: %v", err)
	}
	if len(records) != n {
		t.Fatalf("%d deletions succeeded, want one per message (%d)", len(records), n)
	}
	got, err := s.Since(t.Context(), "race", 0, 10*n)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if want := span(1, 3*n); !equalSeqs(seqs(got), want) {
		t.Fatalf("Since(0) = %d messages %v, want 1..%d gap-free", len(got), seqs(got), 3*n)
	}
	for _, m := range got[:n] {
		if !m.Deleted || m.Text != "" {
			t.Errorf("seq %d: Deleted %v, Text %q; want erased", m.Seq, m.Deleted, m.Text)
		}
	}
	for _, m := range got[n:] {
		if m.Deletes != records[m.Seq] {
			t.Errorf("seq %d: Deletes %d, want %d", m.Seq, m.Deletes, records[m.Seq])
		}
	}
	watched := w.wait(t, "watcher of race", 3*n)
	if !equalSeqs(seqs(watched), span(1, 3*n)) {
		t.Errorf("watcher got %v, want 1..%d in order", seqs(watched), 3*n)
	}
	for _, m := range watched {
		if m.Seq > n && m.Deletes != records[m.Seq] {
			t.Errorf("watched seq %d: Deletes %d, want %d", m.Seq, m.Deletes, records[m.Seq])
		}
	}
}
