package chat_test

import (
	"testing"

	"github.com/hxchat/hxchat/chat"
)

func TestMemoryStoreForgetsLeastRecentRoom(t *testing.T) {
	s := chat.NewMemoryStore(10, chat.WithMaxRooms(2))
	ctx := t.Context()
	for _, room := range []string{"a", "b", "a", "c"} { // c evicts b: a was posted to after b
		if _, err := s.Append(ctx, chat.Message{Room: room, Text: "x"}); err != nil {
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
