package chat

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestMemoryStoreForgetsLeastRecentRoom(t *testing.T) {
	s := NewMemoryStore(10, WithMaxRooms(2))
	ctx := t.Context()
	for _, room := range []string{"a", "b", "a", "c"} { // c evicts b: a was posted to after b
		if _, err := s.Append(ctx, Message{Room: room, Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for room, want := range map[string]int{"a": 2, "b": 0, "c": 1} {
		got, err := s.Recent(ctx, room, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("room %s holds %d messages, want %d", room, len(got), want)
		}
	}
}

// TestMemoryStoreMaxAgeFreesMemory: an append frees the room's expired
// messages (their slots hold nothing), and a ring that expired altogether
// is released and starts over. Reads cannot tell (they skip expired
// messages either way): this is about memory.
func TestMemoryStoreMaxAgeFreesMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewMemoryStore(4, WithMaxAge(time.Hour))
		post := func(n int) {
			t.Helper()
			for range n {
				if _, err := s.Append(t.Context(), Message{Room: "a", Text: "x", Time: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
		}
		room := func() *memRoom {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return s.rooms["a"]
		}
		post(3) // 1-3 at 0:00
		time.Sleep(30 * time.Minute)
		post(1) // 4 at 0:30
		time.Sleep(31 * time.Minute)
		post(1) // 5 at 1:01 frees 1-3, takes slot 0
		r := room()
		if r.n != 2 || r.first() != 4 {
			t.Fatalf("after expiry: %d held from seq %d, want 2 from seq 4", r.n, r.first())
		}
		used := 0
		for slot, m := range r.msgs {
			switch {
			case m == Message{}:
			case m.Seq < r.first():
				t.Errorf("slot %d still holds expired seq %d", slot, m.Seq)
			case int((m.Seq-r.base-1)%4) != slot:
				t.Errorf("slot %d holds seq %d, whose slot is another", slot, m.Seq)
			default:
				used++
			}
		}
		if used != r.n {
			t.Errorf("%d slots hold messages, want %d", used, r.n)
		}
		time.Sleep(2 * time.Hour)
		post(1) // 6 at 3:01 frees everything: a new ring from slot 0
		if r := room(); r.n != 1 || len(r.msgs) != 1 || r.base != 5 || r.msgs[0].Seq != 6 {
			t.Errorf("after all expired: n %d, %d slots, base %d; want one slot holding seq 6, base 5", r.n, len(r.msgs), r.base)
		}
	})
}
