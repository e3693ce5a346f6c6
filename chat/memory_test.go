package chat_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/chat/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, retention int) chat.Store {
		return chat.NewMemoryStore(retention)
	})
}

func TestMemoryStoreDefaultRetention(t *testing.T) {
	for _, retention := range []int{0, -1} {
		s := chat.NewMemoryStore(retention)
		for i := range chat.DefaultRetention + 3 {
			if _, err := s.Append(t.Context(), chat.Message{Room: "lobby", Text: "x"}); err != nil {
				t.Fatalf("NewMemoryStore(%d): Append #%d: %v", retention, i+1, err)
			}
		}
		got, err := s.Since(t.Context(), "lobby", 0, 2*chat.DefaultRetention)
		if err != nil {
			t.Fatalf("NewMemoryStore(%d): Since: %v", retention, err)
		}
		if len(got) != chat.DefaultRetention || got[0].Seq != 4 {
			t.Errorf("NewMemoryStore(%d) kept %d messages from seq %d, want %d from seq 4",
				retention, len(got), got[0].Seq, chat.DefaultRetention)
		}
	}
}

// TestMemoryStoreEvictedRoomSeqNeverGoesBack: a room the store forgot (to
// stay under WithMaxRooms) and that is posted to again must not hand out
// seqs it already gave out. Readers hold cursors: an SSE stream that sent
// seq 3 skips any later delivery with seq <= 3 as "already sent", and a
// browser resuming with Last-Event-ID 3 would be told nothing is new. The
// forgotten messages may be reported as trimmed; reused seqs are lost
// messages.
func TestMemoryStoreEvictedRoomSeqNeverGoesBack(t *testing.T) {
	ctx := t.Context()
	s := chat.NewMemoryStore(10, chat.WithMaxRooms(2))
	appendTo := func(room string) chat.Message {
		t.Helper()
		m, err := s.Append(ctx, chat.Message{Room: room, Text: room})
		if err != nil {
			t.Fatalf("Append(%q): %v", room, err)
		}
		return m
	}
	for range 3 {
		appendTo("a")
	}
	appendTo("b")
	appendTo("c") // forgets a, the least recently posted room
	if got, err := s.Recent(ctx, "a", 10); err != nil || len(got) != 0 {
		t.Fatalf("Recent(a) after eviction = %d messages, %v; want none (the test relies on a being forgotten)", len(got), err)
	}

	m := appendTo("a")
	if m.Seq <= 3 {
		t.Errorf("Append to a forgotten room reused seq %d; a reader that saw seq 3 would skip it. Want seq > 3", m.Seq)
	}
	// Whatever seq it got, the store must read it back consistently.
	got, err := s.Since(ctx, "a", m.Seq-1, 10)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if len(got) != 1 || got[0].Seq != m.Seq {
		t.Errorf("Since(a, %d) = %v, want the message with seq %d", m.Seq-1, got, m.Seq)
	}
	// A cursor from before the eviction must not hide the new message.
	got, err = s.Since(ctx, "a", 3, 10)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if len(got) != 1 || got[0].Seq != m.Seq {
		t.Errorf("Since(a, 3) after the room came back = %d messages, want the new one (seq %d)", len(got), m.Seq)
	}
	// The room's second life wraps its ring of 10 like the first did.
	want := map[int64]string{m.Seq: m.Text}
	for i := range 14 {
		w, err := s.Append(ctx, chat.Message{Room: "a", Text: fmt.Sprintf("again %d", i)})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if w.Seq != m.Seq+int64(i)+1 {
			t.Fatalf("Append #%d after the room came back: seq %d, want %d", i, w.Seq, m.Seq+int64(i)+1)
		}
		want[w.Seq] = w.Text
	}
	got, err = s.Since(ctx, "a", 0, 100)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if len(got) != 10 || got[9].Seq != m.Seq+14 {
		t.Fatalf("Since(a, 0) = %d messages ending at seq %d, want the newest 10 ending at %d", len(got), got[len(got)-1].Seq, m.Seq+14)
	}
	for i, g := range got {
		if g.Seq != m.Seq+5+int64(i) || g.Text != want[g.Seq] {
			t.Errorf("Since(a, 0)[%d] = seq %d %q, want seq %d %q", i, g.Seq, g.Text, m.Seq+5+int64(i), want[m.Seq+5+int64(i)])
		}
	}
}

// TestMemoryStoreMaxAgeWraps: with WithMaxAge, reads skip messages older
// than the age at once, and appends free them from the front of the ring,
// also when the ring has wrapped, or when all of it expired (the ring
// starts over while the seqs go on). Each message's text is its seq, so a
// slot read for the wrong seq shows.
func TestMemoryStoreMaxAgeWraps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := chat.NewMemoryStore(4, chat.WithMaxAge(time.Hour))
		var next int64 = 1
		postSeqs := func(n int) {
			t.Helper()
			for range n {
				m, err := s.Append(ctx, chat.Message{Room: "a", Text: strconv.FormatInt(next, 10), Time: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				if m.Seq != next {
					t.Fatalf("Append: seq %d, want %d", m.Seq, next)
				}
				next++
			}
		}
		check := func(what string, want ...int64) {
			t.Helper()
			since, err := s.Since(ctx, "a", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			recent, err := s.Recent(ctx, "a", 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range [][]chat.Message{since, recent} {
				var seqs []int64
				for _, m := range got {
					seqs = append(seqs, m.Seq)
					if m.Text != strconv.FormatInt(m.Seq, 10) {
						t.Errorf("%s: seq %d holds the text %q of another seq", what, m.Seq, m.Text)
					}
				}
				if !slices.Equal(seqs, want) {
					t.Errorf("%s: Since/Recent = %v, want %v", what, seqs, want)
				}
			}
		}

		postSeqs(3) // 1-3 at 0:00, slots 0-2
		time.Sleep(30 * time.Minute)
		postSeqs(1) // 4 at 0:30, slot 3: the ring is full
		check("at 0:30", 1, 2, 3, 4)
		time.Sleep(31 * time.Minute)
		check("at 1:01, before any append", 4)
		if got, err := s.Since(ctx, "a", 2, 10); err != nil || len(got) != 1 || got[0].Seq != 4 {
			t.Errorf("Since(a, 2) at 1:01 = %v, %v; want seq 4 only", got, err)
		}
		if got, err := s.Recent(ctx, "a", 2); err != nil || len(got) != 1 || got[0].Seq != 4 {
			t.Errorf("Recent(a, 2) at 1:01 = %v, %v; want seq 4 only", got, err)
		}
		postSeqs(3) // 5-7 at 1:01 free 1-3 and wrap into slots 0-2
		check("at 1:01, after appends", 4, 5, 6, 7)
		time.Sleep(34 * time.Minute)
		check("at 1:35", 5, 6, 7)
		postSeqs(1) // 8 frees 4 and takes its slot 3
		check("at 1:35, after an append", 5, 6, 7, 8)
		postSeqs(1) // 9: the retention drops 5 (slot 0)
		check("at 1:35, past the retention", 6, 7, 8, 9)
		time.Sleep(2 * time.Hour)
		check("at 3:35, all old")
		postSeqs(1) // 10 frees everything: the ring starts over at slot 0
		check("at 3:35, after an append", 10)
		postSeqs(5) // 11-15 wrap it again
		check("at 3:35, wrapped again", 12, 13, 14, 15)
		if got, err := s.Since(ctx, "a", 13, 10); err != nil || len(got) != 2 || got[0].Seq != 14 || got[1].Text != "15" {
			t.Errorf("Since(a, 13) = %v, %v; want seqs 14 and 15", got, err)
		}
	})
}

// TestMemoryStoreNoMaxAge: without WithMaxAge (or with 0), old messages
// stay.
func TestMemoryStoreNoMaxAge(t *testing.T) {
	for _, s := range []*chat.MemoryStore{chat.NewMemoryStore(10), chat.NewMemoryStore(10, chat.WithMaxAge(0))} {
		old := chat.Message{Room: "a", Text: "old", Time: time.Now().Add(-24 * 365 * time.Hour)}
		for range 2 {
			if _, err := s.Append(t.Context(), old); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Recent(t.Context(), "a", 10); err != nil || len(got) != 2 {
			t.Errorf("Recent = %d messages, %v; want both old ones", len(got), err)
		}
	}
}
