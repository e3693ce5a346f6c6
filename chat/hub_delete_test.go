package chat_test

import (
	"errors"
	"testing"

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
