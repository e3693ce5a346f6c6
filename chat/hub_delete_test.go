package chat_test

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/hxchat/hxchat/chat"
)

// Hub.Delete checks who asks before the store does, and stamps the record.
func TestHubDelete(t *testing.T) {
	author := chat.Author{Name: "alice", Key: "a11ce0000000"}
	for _, tc := range []struct {
		name     string
		room     string
		seq      int64
		who      chat.Author
		operator bool
		want     error // nil: deleted
	}{
		{"Author", "lobby", 1, author, false, nil},
		{"Operator", "lobby", 1, chat.Author{Key: "0be000000000"}, true, nil},
		{"OperatorWithoutKey", "lobby", 1, chat.Author{}, true, nil},
		{"Other", "lobby", 1, chat.Author{Key: "b0b000000000"}, false, chat.ErrNotAuthor},
		// A person without a key is nobody's author, not everybody's.
		{"NoKey", "lobby", 2, chat.Author{}, false, chat.ErrNotAuthor},
		{"BadKey", "lobby", 1, chat.Author{Key: "NOT HEX"}, false, chat.ErrInvalid},
		{"BadRoom", "../x", 1, author, false, chat.ErrInvalid},
		{"SeqZero", "lobby", 0, author, true, chat.ErrNotFound},
		{"SeqNegative", "lobby", -3, author, true, chat.ErrNotFound},
		{"Unknown", "lobby", 9, author, true, chat.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, store := newHub(t, chat.HubOptions{})
			if _, err := h.Post(t.Context(), "lobby", author, "first"); err != nil {
				t.Fatal(err)
			}
			// A message stored before people had keys.
			if _, err := store.Append(t.Context(), chat.Message{Room: "lobby", Author: "old", Text: "keyless"}); err != nil {
				t.Fatal(err)
			}
			rec, err := h.Delete(t.Context(), tc.room, tc.seq, tc.who, tc.operator)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Delete = %+v, %v; want %v", rec, err, tc.want)
			}
			got, _ := store.Since(t.Context(), "lobby", 0, 10)
			if tc.want != nil {
				if len(got) != 2 || got[0].Deleted || got[1].Deleted {
					t.Errorf("a refused deletion changed the room: %+v", got)
				}
				return
			}
			if rec.Seq != 3 || rec.Deletes != tc.seq || rec.AuthorKey != tc.who.Key || rec.Time.IsZero() {
				t.Errorf("record %+v, want seq 3 deleting %d by %q, stamped", rec, tc.seq, tc.who.Key)
			}
			if len(got) != 3 || !got[0].Deleted || got[0].Text != "" {
				t.Errorf("after the deletion the room holds %+v", got)
			}
		})
	}
}

// Each event says what it does to the client's log, for transports that
// can only append (the live log without JavaScript): a message and a
// trimmed notice are appended, a deletion record and a snapshot replace
// what is shown.
func TestEventKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		author := chat.Author{Name: "alice", Key: "a11ce0000000"}
		h, _ := newHub(t, followOpts(chat.HubOptions{}))
		live := followFrom(t, h, "lobby", chat.Cursor{})
		synctest.Wait()
		m, err := h.Post(t.Context(), "lobby", author, "first")
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := h.Delete(t.Context(), "lobby", m.Seq, author, false); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Replayed: the placeholder is appended, the record replaces.
		replayed := followFrom(t, h, "lobby", chat.Cursor{Epoch: m.Epoch, Seq: 0})
		// Another history's cursor: a snapshot.
		snap := followFrom(t, h, "lobby", chat.Cursor{Epoch: "0ther", Seq: 1})
		synctest.Wait()
		for _, tc := range []struct {
			name string
			s    *sink
			want []chat.EventKind
		}{
			{"Live", live, []chat.EventKind{chat.Appended, chat.Replaces}},
			{"Replayed", replayed, []chat.EventKind{chat.Appended, chat.Replaces}},
			{"Snapshot", snap, []chat.EventKind{chat.Replaces}},
		} {
			var got []chat.EventKind
			for _, ev := range tc.s.got() {
				got = append(got, ev.Kind)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: kinds %v, want %v (events %s)", tc.name, got, tc.want, describe(tc.s.got()))
			}
		}
	})
}
