package chat

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Defaults of HubOptions.
const (
	// DefaultQueueSize bounds the events queued for one follower.
	DefaultQueueSize = 256
	// DefaultReplayBatch is how many messages one store read replays.
	DefaultReplayBatch = 256
	// DefaultReplayMax is how far behind a follower may be and still be
	// replayed message by message; further behind gets a snapshot.
	DefaultReplayMax = 300
	// DefaultSnapshotSize is how many messages a snapshot holds.
	DefaultSnapshotSize = 50
)

// RenderFunc renders the fragment of a message, as sent on the wire.
type RenderFunc func(Message) ([]byte, error)

// HubOptions configures a Hub. Zero values select defaults.
type HubOptions struct {
	// QueueSize bounds each follower's queue (DefaultQueueSize). A
	// follower whose client is slower than the room falls behind and
	// resumes from the store; nobody waits for it.
	QueueSize int
	// ReplayBatch is how many messages one store read replays
	// (DefaultReplayBatch).
	ReplayBatch int
	// ReplayMax is how many messages a follower replays before it gets a
	// snapshot instead (DefaultReplayMax).
	ReplayMax int
	// SnapshotSize is how many of the newest messages a snapshot holds
	// (DefaultSnapshotSize).
	SnapshotSize int
	// Render renders a message's fragment once per message.
	Render RenderFunc
	// RenderSnapshot and RenderTrimmed render a follower's snapshots and
	// trimmed notices (unset: the messages' fragments, and nothing).
	RenderSnapshot SnapshotFunc
	RenderTrimmed  TrimmedFunc
	// Now returns the time stamped on new messages (time.Now).
	Now func() time.Time
	// OnOverflow, if set, is called when a follower's queue overflowed
	// (it then resumes from the store), with the number queued.
	OnOverflow func(room string, queued int)
	// OnReplay, if set, is called with the number of messages a follower
	// read from the store.
	OnReplay func(n int)
	// OnDeliver, if set, is called after each fan-out with the message
	// and the number of followers it was handed to.
	OnDeliver func(m Message, n int)
	// Presence keeps who is in which room. Unset, it is the store's own
	// when the store is a PresenceKeeper, else a LocalPresence.
	Presence Presence
	// RenderPresence renders a room's member list once per change (unset:
	// updates carry no HTML).
	RenderPresence PresenceRenderFunc
	// PresenceInterval is the least time between two member lists sent
	// to a room (DefaultPresenceInterval); changes in between are merged.
	PresenceInterval time.Duration
	// OnPresenceError, if set, is called when a room's members could not
	// be read.
	OnPresenceError func(room string, err error)
}

// Hub groups followers by room. It stores posted messages and fans each
// message the store hands on (Store.Watch, in seq order) out to the
// followers of its room, rendered once. It never waits on a follower.
type Hub struct {
	store Store
	opts  HubOptions

	presence *hubPresence // broadcasts member lists; see hub_presence.go

	mu    sync.RWMutex
	rooms map[string]map[*Follower]struct{}

	wmu     sync.Mutex // guards watches; never held with mu
	watches map[string]*watch
}

// watch is the store's Watch of a room, shared by the room's local
// followers. ready is closed once the store watches the room (stop is set
// then).
type watch struct {
	refs  int
	ready chan struct{}
	stop  func()
}

// NewHub returns a Hub storing messages in store.
func NewHub(store Store, opts HubOptions) *Hub {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.ReplayBatch <= 0 {
		opts.ReplayBatch = DefaultReplayBatch
	}
	if opts.ReplayMax <= 0 {
		opts.ReplayMax = DefaultReplayMax
	}
	if opts.SnapshotSize <= 0 {
		opts.SnapshotSize = DefaultSnapshotSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Render == nil {
		opts.Render = func(m Message) ([]byte, error) { return []byte(m.Text), nil }
	}
	if opts.RenderSnapshot == nil {
		opts.RenderSnapshot = func(msgs []Message, _ bool) ([]byte, error) {
			var b []byte
			for _, m := range msgs {
				html, err := opts.Render(m)
				if err != nil {
					return nil, err
				}
				b = append(b, html...)
			}
			return b, nil
		}
	}
	if opts.RenderTrimmed == nil {
		opts.RenderTrimmed = func(int64) ([]byte, error) { return []byte(" "), nil }
	}
	if opts.Presence == nil {
		if k, ok := store.(PresenceKeeper); ok {
			opts.Presence = k.Presence()
		} else {
			opts.Presence = NewLocalPresence()
		}
	}
	if opts.PresenceInterval <= 0 {
		opts.PresenceInterval = DefaultPresenceInterval
	}
	h := &Hub{store: store, opts: opts, rooms: make(map[string]map[*Follower]struct{}), watches: make(map[string]*watch)}
	h.presence = newHubPresence(opts.Presence, opts.RenderPresence, opts.PresenceInterval)
	return h
}

// Render renders m with the hub's RenderFunc.
func (h *Hub) Render(m Message) ([]byte, error) { return h.opts.Render(m) }

// Post validates room, author and text and appends the message to the
// store, which hands it on to the room's followers. It returns the stored
// message. Invalid input (author.Name must pass NormalizeName, author.Key
// must be lower-case hex) returns an error wrapping ErrInvalid and stores
// nothing.
func (h *Hub) Post(ctx context.Context, room string, author Author, text string) (Message, error) {
	if err := ValidateRoom(room); err != nil {
		return Message{}, err
	}
	name, err := NormalizeName(author.Name)
	if err != nil {
		return Message{}, fmt.Errorf("author: %w", err)
	}
	if !validAuthorKey(author.Key) {
		return Message{}, invalid("author key is not up to %d lower-case hex digits", MaxAuthorKeyLen)
	}
	text, err = NormalizeText(text)
	if err != nil {
		return Message{}, err
	}
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	// Once handed to the store, the append runs to its end even if the
	// poster goes away. Stores bound their own time.
	m, err := h.store.Append(context.WithoutCancel(ctx), Message{Room: room, Author: name, AuthorKey: author.Key, Text: text, Time: h.opts.Now().UTC()})
	if err != nil {
		return Message{}, fmt.Errorf("post to %q: %w", room, err)
	}
	return m, nil
}

// fanoutChunk is how many followers one goroutine hands a message to: a
// room with more is fanned out by up to GOMAXPROCS goroutines at once.
const fanoutChunk = 1024

// followerLists holds the lists a large room's fan-out is split from.
var followerLists = sync.Pool{New: func() any { return new([]*Follower) }}

// publish fans m out to the followers of its room. The store calls it in
// seq order per room, never concurrently for one room; it never blocks on
// a follower. A room of many followers is fanned out by several goroutines
// at once, each taking its share of them; publish returns when all are
// done, so every follower still gets the room's messages in order.
func (h *Hub) publish(m Message) {
	h.mu.RLock()
	n := len(h.rooms[m.Room])
	h.mu.RUnlock()
	if n == 0 {
		return
	}
	// Rendered outside the lock, once for every follower.
	html, err := h.opts.Render(m)
	if err != nil {
		// Rendering plain data cannot fail short of a bug; followers
		// find the message in the store at the next one's gap.
		return
	}
	d := &Delivery{Message: m, Event: Event{ID: Cursor{Epoch: m.Epoch, Seq: m.Seq}.AppendText(nil), HTML: html}}
	h.mu.RLock()
	fs := h.rooms[m.Room]
	n = len(fs)
	workers := min(runtime.GOMAXPROCS(0), (n+fanoutChunk-1)/fanoutChunk)
	if workers <= 1 {
		for f := range fs {
			f.deliver(d)
		}
		h.mu.RUnlock()
	} else {
		// Split outside the lock: a follower that leaves meanwhile is
		// ended, and deliver ignores it.
		list := followerLists.Get().(*[]*Follower)
		for f := range fs {
			*list = append(*list, f)
		}
		h.mu.RUnlock()
		share := (n + workers - 1) / workers
		var wg sync.WaitGroup
		for i := share; i < n; i += share {
			part := (*list)[i:min(i+share, n)]
			wg.Go(func() {
				for _, f := range part {
					f.deliver(d)
				}
			})
		}
		for _, f := range (*list)[:share] {
			f.deliver(d)
		}
		wg.Wait()
		clear(*list)
		*list = (*list)[:0]
		followerLists.Put(list)
	}
	if h.opts.OnDeliver != nil {
		h.opts.OnDeliver(m, n)
	}
}

// join adds f to its room and takes the room's watches (store and
// members); it returns once the store watches the room, so f's first store
// read misses nothing.
func (h *Hub) join(f *Follower) {
	h.mu.Lock()
	fs := h.rooms[f.room]
	if fs == nil {
		fs = make(map[*Follower]struct{})
		h.rooms[f.room] = fs
	}
	fs[f] = struct{}{}
	h.mu.Unlock()
	h.watch(f.room)
}

// leave removes f from its room and drops the watches join took; it is
// safe to call more than once.
func (h *Hub) leave(f *Follower) {
	h.mu.Lock()
	fs := h.rooms[f.room]
	if _, ok := fs[f]; !ok {
		h.mu.Unlock()
		return
	}
	delete(fs, f)
	if len(fs) == 0 {
		delete(h.rooms, f.room)
	}
	h.mu.Unlock()
	h.unwatch(f.room)
}

// watch takes a reference on room's store watch and member watch,
// starting them for the room's first local follower. The store's Watch may
// wait on the network (Redis reads the room's newest seq): it runs outside
// wmu, so other rooms' followers never wait for it. unwatch undoes it.
func (h *Hub) watch(room string) {
	h.watchPresence(room)
	h.wmu.Lock()
	w := h.watches[room]
	first := w == nil
	if first {
		w = &watch{ready: make(chan struct{})}
		h.watches[room] = w
	}
	w.refs++
	h.wmu.Unlock()
	if first {
		w.stop = h.store.Watch(room, h.publish)
		close(w.ready)
	} else {
		<-w.ready
	}
}

// unwatch drops the references watch took, stopping the watches with the
// last.
func (h *Hub) unwatch(room string) {
	h.unwatchPresence(room)
	h.wmu.Lock()
	w := h.watches[room]
	if w == nil {
		h.wmu.Unlock()
		return
	}
	w.refs--
	last := w.refs == 0
	if last {
		delete(h.watches, room)
	}
	h.wmu.Unlock()
	if last {
		<-w.ready
		w.stop()
	}
}

// Subscribers returns the number of followers of room on this node.
func (h *Hub) Subscribers(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms[room])
}

// Since reads the store; see Store.Since.
func (h *Hub) Since(ctx context.Context, room string, after int64, limit int) ([]Message, error) {
	return h.store.Since(ctx, room, after, limit)
}

// Recent reads the store; see Store.Recent.
func (h *Hub) Recent(ctx context.Context, room string, n int) ([]Message, error) {
	return h.store.Recent(ctx, room, n)
}
