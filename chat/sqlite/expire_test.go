package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// aged returns a test message stamped age ago.
func aged(room, text string, age time.Duration) chat.Message {
	m := msg(room, text)
	m.Time = time.Now().Add(-age)
	return m
}

// TestMaxAgeDeletesOldMessages: messages older than MaxAge are deleted in
// the background and newer ones kept; a room whose messages all aged out
// keeps its newest seq and epoch; sweeps come again, every SweepInterval.
func TestMaxAgeDeletesOldMessages(t *testing.T) {
	const maxAge = time.Hour
	// TrimBatch below the old messages of a room and below the rooms: a
	// sweep takes several transactions and several looks at the rooms.
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{MaxAge: maxAge, SweepInterval: 10 * time.Millisecond, TrimBatch: 3})
	appendAll := func(ms ...chat.Message) map[string]string {
		epochs := make(map[string]string)
		for _, m := range ms {
			got, err := s.Append(t.Context(), m)
			if err != nil {
				t.Fatal(err)
			}
			epochs[m.Room] = got.Epoch
		}
		return epochs
	}
	var ms []chat.Message
	for i := range 7 {
		ms = append(ms, aged("mixed", fmt.Sprint(i+1), 3*maxAge-time.Duration(i)*time.Minute))
	}
	ms = append(ms, aged("mixed", "8", 0), aged("mixed", "9", 0))
	for i := range 4 {
		ms = append(ms, aged("old", fmt.Sprint(i+1), 2*maxAge))
	}
	ms = append(ms, aged("new", "1", maxAge/2), aged("new", "2", 0))
	// Stamped out of order: an old message waits for the new ones before
	// it, so only a room's old prefix goes.
	ms = append(ms, aged("jumbled", "1", 0), aged("jumbled", "2", 2*maxAge))
	ms = append(ms, aged("zigzag", "1", 2*maxAge), aged("zigzag", "2", 0), aged("zigzag", "3", 2*maxAge))
	for i := range 4 {
		ms = append(ms, aged(fmt.Sprintf("quiet-%d", i), "1", 0))
	}
	epochs := appendAll(ms...)
	const expired = 7 + 4 + 1
	waitFor(t, fmt.Sprintf("Stats.Expired = %d", expired), func() bool { return s.Stats().Expired >= expired })
	if got := s.Stats().Expired; got != expired {
		t.Errorf("Stats.Expired = %d, want %d", got, expired)
	}
	for room, want := range map[string]string{
		"mixed": "8:8 9:9", "old": "", "new": "1:1 2:2", "jumbled": "1:1 2:2", "zigzag": "2:2 3:3", "quiet-3": "1:1",
	} {
		got, err := s.Since(t.Context(), room, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if texts(got) != want {
			t.Errorf("%s after the sweep = %q, want %q", room, texts(got), want)
		}
	}
	// The room's row outlives its messages: seqs go on, in its epoch.
	m, err := s.Append(t.Context(), aged("old", "5", 0))
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 5 || m.Epoch != epochs["old"] {
		t.Errorf("Append to the aged-out room = seq %d, epoch %q; want seq 5, epoch %q", m.Seq, m.Epoch, epochs["old"])
	}

	// Another sweep comes.
	appendAll(aged("late", "1", 2*maxAge), aged("late", "2", 2*maxAge), aged("new", "3", 2*maxAge))
	waitFor(t, "a later sweep", func() bool { return s.Stats().Expired >= expired+2 })
	for room, want := range map[string]string{"late": "", "new": "1:1 2:2 3:3"} {
		got, err := s.Since(t.Context(), room, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if texts(got) != want {
			t.Errorf("%s after a later sweep = %q, want %q", room, texts(got), want)
		}
	}
}

// TestMaxAgeZeroKeepsForever: without MaxAge nothing is ever expired.
func TestMaxAgeZeroKeepsForever(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), Options{SweepInterval: time.Millisecond})
	mustAppend(t, s, aged("lobby", "ancient", 100*365*24*time.Hour), 1)
	time.Sleep(50 * time.Millisecond) // many sweep intervals, had there been sweeps
	if got := storedRows(t, s, "lobby"); got != 1 || s.Stats().Expired != 0 {
		t.Errorf("rows of lobby = %d, Stats.Expired = %d; want 1 and 0", got, s.Stats().Expired)
	}
}

func TestSweepIntervalDefault(t *testing.T) {
	for _, tc := range []struct {
		maxAge, set, want time.Duration
	}{
		{0, 0, MinSweepInterval},
		{time.Second, 0, MinSweepInterval},
		{5 * time.Minute, 0, 30 * time.Second},
		{24 * time.Hour, 0, MaxSweepInterval},
		{24 * time.Hour, time.Millisecond, time.Millisecond},
	} {
		if got := (Options{MaxAge: tc.maxAge, SweepInterval: tc.set}).withDefaults().SweepInterval; got != tc.want {
			t.Errorf("SweepInterval for MaxAge %v, set %v = %v, want %v", tc.maxAge, tc.set, got, tc.want)
		}
	}
}
