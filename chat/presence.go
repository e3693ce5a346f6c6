package chat

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Member is one person present in a room. Key tells people apart (one
// person's tabs share it, so they count once); Name is what is shown.
// Presence is not history: joins and leaves are never stored as messages.
type Member struct {
	Key  string
	Name string
}

// Occupancy is how many distinct people are present in a room.
type Occupancy struct {
	Room   string
	Online int
}

// Presence keeps track of who is in which room right now. Implementations
// are safe for concurrent use.
type Presence interface {
	// Join marks m present in room until leave is called. Joins with one
	// Key count once: the member stays present until the last of them has
	// left, under the Name of the newest one still joined. Join and leave
	// never wait on the network; leave may be called more than once.
	Join(room string, m Member) (leave func())
	// Members returns the members present in room, each Key once, in the
	// order of SortMembers.
	Members(ctx context.Context, room string) ([]Member, error)
	// Occupied returns up to limit rooms where someone is present, the
	// fullest first (then by name).
	Occupied(ctx context.Context, limit int) ([]Occupancy, error)
	// WatchMembers calls fn whenever the members of room may have changed:
	// a join or leave in this process or another one, or a member that
	// expired. Calls may be spurious, and several changes may give one
	// call; fn must not block. stop may be called more than once; once it
	// returned, fn is not called again but for one call already under way.
	WatchMembers(room string, fn func()) (stop func())
}

// PresenceKeeper is implemented by stores shared by many nodes that also
// share who is present (Redis). A Hub whose store is not one keeps
// presence in its own process (LocalPresence), which is right for one node.
type PresenceKeeper interface {
	Presence() Presence
}

// SortMembers orders members by name, ignoring case, then by key.
func SortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		return cmp.Or(
			cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Key, b.Key),
		)
	})
}

// LocalPresence is a Presence of one process. It also serves as the local
// half of a presence shared by many nodes: Rooms, Watched and Notify let
// such an implementation publish what is joined here and pass on changes
// it learns of elsewhere.
type LocalPresence struct {
	mu       sync.Mutex
	rooms    map[string]map[string]*localMember // room → key → member; no empty maps
	watchers map[string]map[*presenceWatcher]struct{}
}

// localMember is one Key's joins in a room, oldest first.
type localMember struct {
	joins []*localJoin
}

type localJoin struct{ name string }

type presenceWatcher struct {
	fn  func()
	off atomic.Bool
}

var _ Presence = (*LocalPresence)(nil)

// NewLocalPresence returns an empty LocalPresence.
func NewLocalPresence() *LocalPresence {
	return &LocalPresence{
		rooms:    make(map[string]map[string]*localMember),
		watchers: make(map[string]map[*presenceWatcher]struct{}),
	}
}

// Join implements Presence.
func (p *LocalPresence) Join(room string, m Member) (leave func()) {
	j := &localJoin{name: m.Name}
	p.mu.Lock()
	members := p.rooms[room]
	if members == nil {
		members = make(map[string]*localMember)
		p.rooms[room] = members
	}
	lm := members[m.Key]
	if lm == nil {
		lm = &localMember{}
		members[m.Key] = lm
	}
	lm.joins = append(lm.joins, j)
	p.mu.Unlock()
	p.Notify(room)

	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			lm.joins = slices.DeleteFunc(lm.joins, func(x *localJoin) bool { return x == j })
			if len(lm.joins) == 0 {
				// Deleted at zero, so rooms and keys seen once do not
				// stay in memory.
				delete(members, m.Key)
				if len(members) == 0 {
					delete(p.rooms, room)
				}
			}
			p.mu.Unlock()
			p.Notify(room)
		})
	}
}

// Members implements Presence.
func (p *LocalPresence) Members(ctx context.Context, room string) ([]Member, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	members := p.rooms[room]
	out := make([]Member, 0, len(members))
	for key, lm := range members {
		out = append(out, Member{Key: key, Name: lm.joins[len(lm.joins)-1].name})
	}
	p.mu.Unlock()
	SortMembers(out)
	return out, nil
}

// Occupied implements Presence.
func (p *LocalPresence) Occupied(ctx context.Context, limit int) ([]Occupancy, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	p.mu.Lock()
	out := make([]Occupancy, 0, len(p.rooms))
	for room, members := range p.rooms {
		out = append(out, Occupancy{Room: room, Online: len(members)})
	}
	p.mu.Unlock()
	SortOccupancy(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// SortOccupancy orders rooms the fullest first, then by name.
func SortOccupancy(os []Occupancy) {
	slices.SortFunc(os, func(a, b Occupancy) int {
		return cmp.Or(cmp.Compare(b.Online, a.Online), cmp.Compare(a.Room, b.Room))
	})
}

// Rooms returns the rooms someone is joined to in this process, in no
// particular order.
func (p *LocalPresence) Rooms() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.rooms))
	for room := range p.rooms {
		out = append(out, room)
	}
	return out
}

// WatchMembers implements Presence: fn is called after each Join and leave
// in room, and by Notify.
func (p *LocalPresence) WatchMembers(room string, fn func()) (stop func()) {
	w := &presenceWatcher{fn: fn}
	p.mu.Lock()
	ws := p.watchers[room]
	if ws == nil {
		ws = make(map[*presenceWatcher]struct{})
		p.watchers[room] = ws
	}
	ws[w] = struct{}{}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			delete(ws, w)
			if len(ws) == 0 {
				delete(p.watchers, room)
			}
			p.mu.Unlock()
			w.off.Store(true)
		})
	}
}

// Watched returns the rooms that have watchers, in no particular order.
func (p *LocalPresence) Watched() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.watchers))
	for room := range p.watchers {
		out = append(out, room)
	}
	return out
}

// Notify calls the watchers of room, for changes learnt of elsewhere.
func (p *LocalPresence) Notify(room string) {
	p.mu.Lock()
	ws := make([]*presenceWatcher, 0, len(p.watchers[room]))
	for w := range p.watchers[room] {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		if !w.off.Load() {
			w.fn()
		}
	}
}
