package chat_test

import (
	"fmt"
	"testing"

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
