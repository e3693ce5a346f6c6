package chat

import (
	"context"
	"slices"
	"sync"
	"time"
)

// PresenceUpdate is the member list of a room on its way to the room's
// subscribers, with its HTML fragment rendered once for all of them. It is
// shared and must not be modified.
type PresenceUpdate struct {
	Room    string
	Members []Member
	HTML    []byte
}

// PresenceRenderFunc renders the fragment of a room's member list.
type PresenceRenderFunc func(room string, members []Member) ([]byte, error)

// presenceReadTimeout bounds one read of a room's members.
const presenceReadTimeout = 5 * time.Second

// DefaultPresenceInterval is the default least time between two member
// lists broadcast to a room. A crowd joining at once (a room of thousands
// after a deploy) would otherwise send every subscriber a new list per
// join: N joins × N subscribers. Changes within the interval are merged
// into the next list.
const DefaultPresenceInterval = time.Second

// hubPresence is the hub's presence broadcaster: for each room with local
// subscribers it watches the room's members and, when they change, queues
// the new list to every subscriber of the room. One worker goroutine, which
// runs only while there is work, reads and renders; so the lists of a room
// reach subscribers in the order they were read, and many changes in a
// burst cost one read.
type hubPresence struct {
	p        Presence
	render   PresenceRenderFunc
	interval time.Duration

	wmu     sync.Mutex // guards watches and their contents
	watches map[string]*presenceWatch

	mu      sync.Mutex // guards dirty and working; never held with wmu
	dirty   map[string]struct{}
	working bool
}

// presenceWatch is a room's member watch, shared by its local subscribers,
// with the update last sent to them.
type presenceWatch struct {
	refs  int
	stop  func()
	sent  *PresenceUpdate
	next  time.Time   // no new list goes out before this
	timer *time.Timer // set while a change waits for next
}

func newHubPresence(p Presence, render PresenceRenderFunc, interval time.Duration) *hubPresence {
	if render == nil {
		// No fragment: subscribers get the members only.
		render = func(string, []Member) ([]byte, error) { return nil, nil }
	}
	return &hubPresence{
		p:        p,
		render:   render,
		interval: interval,
		watches:  make(map[string]*presenceWatch),
		dirty:    make(map[string]struct{}),
	}
}

// Join marks m present in room until leave is called; see Presence.Join.
// Subscribers of room, here and on other nodes sharing the store, get the
// new member list.
func (h *Hub) Join(room string, m Member) (leave func()) {
	return h.presence.p.Join(room, m)
}

// Members returns who is present in room; see Presence.Members.
func (h *Hub) Members(ctx context.Context, room string) ([]Member, error) {
	return h.presence.p.Members(ctx, room)
}

// watchPresence takes a reference on room's member watch, starting it (and
// the first update of the room) for its first local subscriber.
func (h *Hub) watchPresence(room string) {
	hp := h.presence
	hp.wmu.Lock()
	w := hp.watches[room]
	if w == nil {
		w = &presenceWatch{stop: hp.p.WatchMembers(room, func() { h.presenceChanged(room) })}
		hp.watches[room] = w
	}
	w.refs++
	hp.wmu.Unlock()
	// A new subscriber needs the list even when it did not change.
	h.presenceChanged(room)
}

// unwatchPresence drops a reference, stopping the watch with the last.
func (h *Hub) unwatchPresence(room string) {
	hp := h.presence
	hp.wmu.Lock()
	defer hp.wmu.Unlock()
	w := hp.watches[room]
	if w == nil {
		return
	}
	if w.refs--; w.refs == 0 {
		delete(hp.watches, room)
		w.stop()
		if w.timer != nil {
			w.timer.Stop()
		}
	}
}

// presenceChanged marks room for a new read of its members and starts the
// worker if it is not running. It never blocks on the read.
func (h *Hub) presenceChanged(room string) {
	hp := h.presence
	hp.mu.Lock()
	hp.dirty[room] = struct{}{}
	start := !hp.working
	hp.working = true
	hp.mu.Unlock()
	if start {
		go h.presenceWorker()
	}
}

// presenceWorker refreshes dirty rooms until none is left, then ends.
func (h *Hub) presenceWorker() {
	hp := h.presence
	for {
		hp.mu.Lock()
		if len(hp.dirty) == 0 {
			hp.working = false
			hp.mu.Unlock()
			return
		}
		rooms := make([]string, 0, len(hp.dirty))
		for room := range hp.dirty {
			rooms = append(rooms, room)
		}
		clear(hp.dirty)
		hp.mu.Unlock()
		for _, room := range rooms {
			h.refreshPresence(room)
		}
	}
}

// refreshPresence reads room's members and queues them to the subscribers
// of room: to all of them when the list changed, else to those that have
// not had one yet.
func (h *Hub) refreshPresence(room string) {
	hp := h.presence
	if h.Subscribers(room) == 0 {
		return
	}
	// Within the interval after the last list, new subscribers get that
	// list at once and the change waits for the interval's end.
	hp.wmu.Lock()
	w := hp.watches[room]
	if w != nil && time.Now().Before(w.next) {
		if w.timer == nil {
			w.timer = time.AfterFunc(time.Until(w.next), func() {
				hp.wmu.Lock()
				w.timer = nil
				hp.wmu.Unlock()
				h.presenceChanged(room)
			})
		}
		sent := w.sent
		hp.wmu.Unlock()
		if sent != nil {
			h.offerPresence(room, sent, false)
		}
		return
	}
	hp.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), presenceReadTimeout)
	members, err := hp.p.Members(ctx, room)
	cancel()
	if err != nil {
		// The store is away; the presence calls again when it learns
		// of a change or at its next expiry check.
		if h.opts.OnPresenceError != nil {
			h.opts.OnPresenceError(room, err)
		}
		return
	}
	hp.wmu.Lock()
	w = hp.watches[room]
	var u *PresenceUpdate
	if w != nil {
		u = w.sent
	}
	hp.wmu.Unlock()
	if w == nil {
		return // the last subscriber left meanwhile
	}
	changed := u == nil || !slices.Equal(u.Members, members)
	if changed {
		html, err := hp.render(room, members)
		if err != nil {
			return // rendering plain data cannot fail short of a bug
		}
		u = &PresenceUpdate{Room: room, Members: members, HTML: html}
		hp.wmu.Lock()
		w.sent = u
		w.next = time.Now().Add(hp.interval)
		hp.wmu.Unlock()
	}
	h.offerPresence(room, u, changed)
}

// offerPresence offers u to the followers of room: to all of them when
// it is a new list, else to those that have not had one yet.
func (h *Hub) offerPresence(room string, u *PresenceUpdate, changed bool) {
	h.each(room, func(f *Follower) {
		if changed || f.presenceFresh.Load() {
			f.presenceFresh.Store(false)
			f.offerPresence(u)
		}
	})
}
