package chat

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// MaxActiveRooms bounds every list of active rooms.
const MaxActiveRooms = 50

// RoomInfo describes a room in a list of rooms. LastActivity is the time of
// its newest message (zero when none is known); Online is how many people
// are present (always 0 from a RoomLister).
type RoomInfo struct {
	Name         string
	LastActivity time.Time
	Online       int
}

// RoomLister is implemented by stores that can list the rooms posted to
// recently.
type RoomLister interface {
	// Rooms returns up to limit rooms whose newest message is not older
	// than since, the most recently posted to first (then by name).
	Rooms(ctx context.Context, since time.Time, limit int) ([]RoomInfo, error)
}

var _ RoomLister = (*MemoryStore)(nil)

// Rooms implements RoomLister.
func (s *MemoryStore) Rooms(ctx context.Context, since time.Time, limit int) ([]RoomInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("rooms: %w", ErrClosed)
	}
	var out []RoomInfo
	// The LRU list is in order of the last append, which is the order of
	// the messages' times but for posts that raced: look a little beyond
	// the first room that is too old, then sort.
	for e := s.lru.Front(); e != nil && len(out) < limit; e = e.Next() {
		name := e.Value.(string)
		r := s.rooms[name]
		if len(r.msgs) == 0 {
			continue
		}
		t := r.at(r.last, s.retention).Time
		if t.Before(since) {
			if t.Before(since.Add(-time.Minute)) {
				break
			}
			continue
		}
		out = append(out, RoomInfo{Name: name, LastActivity: t})
	}
	SortRooms(out)
	return out, nil
}

// SortRooms orders rooms the most recently active first: anyone present
// counts as activity now, so occupied rooms come first; then by the time
// of the newest message, and by name.
func SortRooms(rooms []RoomInfo) {
	slices.SortFunc(rooms, func(a, b RoomInfo) int {
		return cmp.Or(
			cmp.Compare(min(b.Online, 1), min(a.Online, 1)),
			b.LastActivity.Compare(a.LastActivity),
			cmp.Compare(a.Name, b.Name),
		)
	})
}

// ActiveRooms lists up to limit (at most MaxActiveRooms) rooms that someone
// is present in or that had a message since since, in the order of
// SortRooms, with their online counts. Without a RoomLister store it lists
// the occupied rooms only.
func (h *Hub) ActiveRooms(ctx context.Context, since time.Time, limit int) ([]RoomInfo, error) {
	limit = min(limit, MaxActiveRooms)
	if limit <= 0 {
		return nil, nil
	}
	occ, err := h.presence.p.Occupied(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("active rooms: %w", err)
	}
	var recent []RoomInfo
	if l, ok := h.store.(RoomLister); ok {
		if recent, err = l.Rooms(ctx, since, limit); err != nil {
			return nil, fmt.Errorf("active rooms: %w", err)
		}
	}
	byName := make(map[string]int, len(occ)+len(recent))
	out := make([]RoomInfo, 0, len(occ)+len(recent))
	for _, r := range recent {
		byName[r.Name] = len(out)
		out = append(out, r)
	}
	for _, o := range occ {
		if o.Online <= 0 {
			continue
		}
		if i, ok := byName[o.Room]; ok {
			out[i].Online = o.Online
			continue
		}
		out = append(out, RoomInfo{Name: o.Room, Online: o.Online})
	}
	SortRooms(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
