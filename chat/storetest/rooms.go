package storetest

import (
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// testRoomLister: a store that is a chat.RoomLister lists the rooms posted
// to since a time, the most recently posted to first, up to a limit.
func testRoomLister(t *testing.T, open OpenFunc) {
	s := newStore(t, open, Retention)
	l, ok := s.(chat.RoomLister)
	if !ok {
		t.Skipf("%T is not a chat.RoomLister", s)
	}
	ctx := t.Context()
	t0 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	for i, room := range []string{"a", "b", "c", "a"} {
		m := msg(room, "hi")
		m.Time = t0.Add(time.Duration(i) * time.Second)
		if _, err := s.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	type want struct {
		name string
		at   time.Duration
	}
	check := func(what string, got []chat.RoomInfo, err error, wants ...want) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		ok := len(got) == len(wants)
		for i := 0; ok && i < len(got); i++ {
			ok = got[i].Name == wants[i].name && got[i].LastActivity.Equal(t0.Add(wants[i].at)) && got[i].Online == 0
		}
		if !ok {
			t.Fatalf("%s = %v, want %v (after %v)", what, got, wants, t0)
		}
	}
	got, err := l.Rooms(ctx, t0.Add(-time.Hour), 10)
	check("Rooms(all)", got, err, want{"a", 3 * time.Second}, want{"c", 2 * time.Second}, want{"b", time.Second})
	got, err = l.Rooms(ctx, t0.Add(1500*time.Millisecond), 10)
	check("Rooms(since 1.5s)", got, err, want{"a", 3 * time.Second}, want{"c", 2 * time.Second})
	got, err = l.Rooms(ctx, t0.Add(-time.Hour), 2)
	check("Rooms(limit 2)", got, err, want{"a", 3 * time.Second}, want{"c", 2 * time.Second})
	got, err = l.Rooms(ctx, t0.Add(-time.Hour), 0)
	check("Rooms(limit 0)", got, err)
}
