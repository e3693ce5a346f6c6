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
	rooms map[string]*followers

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
	h := &Hub{store: store, opts: opts, rooms: make(map[string]*followers), watches: make(map[string]*watch)}
	h.presence = newHubPresence(opts.Presence, opts.RenderPresence, opts.PresenceInterval)
	return h
}

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

// fanoutInline is the most followers a room may have to be fanned out on
// the store's fan-out goroutine itself; a larger room's shards are fanned
// out by goroutines of their own, in parallel.
const fanoutInline = 1024

// followers is a room's followers, split into shards (one per CPU) that
// are fanned out independently. A shard hands the room's messages to its
// followers one after another, in the order the store published them, so
// every follower gets them in order; the shards of a large room each have
// a goroutine of their own (while they have work), so one message's
// fan-out runs on every core and overlaps the previous one's, as posts
// that race do.
type followers struct {
	shards []*shard
	n      int // followers in all shards
	next   int // the shard the next follower joins
}

// shard is a part of a room's followers with its own fan-out queue.
type shard struct {
	followers map[*Follower]struct{} // guarded by Hub.mu

	mu      sync.Mutex
	queue   []*Delivery // waiting for the shard's goroutine, in seq order
	running bool        // the shard's goroutine runs
}

// publish fans m out to the followers of its room. The store calls it in
// seq order per room, never concurrently for one room; it never blocks on
// a follower. In a small room it hands m to each follower itself; in a
// room of more than fanoutInline followers it queues m for each shard's
// goroutine and returns.
func (h *Hub) publish(m Message) {
	h.mu.RLock()
	fs := h.rooms[m.Room]
	var n int
	if fs != nil {
		n = fs.n
	}
	h.mu.RUnlock()
	if fs == nil {
		return
	}
	// Rendered outside the lock, once for every follower.
	html, err := h.opts.Render(m)
	if err != nil {
		// Rendering plain data cannot fail short of a bug; followers
		// find the message in the store at the next one's gap.
		return
	}
	d := &Delivery{Message: m, Event: Event{ID: Cursor{Epoch: m.Epoch, Seq: m.Seq}.AppendText(nil), HTML: html, Kind: kindOf(m)}}
	inline := n <= fanoutInline
	for _, s := range fs.shards {
		s.mu.Lock()
		if inline && !s.running {
			// Nothing of the shard's is pending: no goroutine needed.
			s.mu.Unlock()
			h.deliver(s, d)
			continue
		}
		if len(s.queue) >= MaxQueued {
			// The shard cannot keep up: its followers meet a gap and
			// read the oldest from the store.
			clear(s.queue[:1])
			s.queue = s.queue[1:]
		}
		s.queue = append(s.queue, d)
		start := !s.running
		s.running = true
		s.mu.Unlock()
		if start {
			go h.runShard(s)
		}
	}
	if h.opts.OnDeliver != nil {
		h.opts.OnDeliver(m, n)
	}
}

// deliver hands d to the followers of s.
func (h *Hub) deliver(s *shard, d *Delivery) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for f := range s.followers {
		f.deliver(d)
	}
}

// runShard fans out s's queue, in order, until it is empty.
func (h *Hub) runShard(s *shard) {
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		if len(q) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, d := range q {
			h.deliver(s, d)
		}
	}
}

// join adds f to its room and takes the room's watches (store and
// members); it returns once the store watches the room, so f's first store
// read misses nothing.
func (h *Hub) join(f *Follower) {
	h.mu.Lock()
	fs := h.rooms[f.room]
	if fs == nil {
		fs = &followers{shards: make([]*shard, max(1, runtime.GOMAXPROCS(0)))}
		for i := range fs.shards {
			fs.shards[i] = &shard{followers: make(map[*Follower]struct{})}
		}
		h.rooms[f.room] = fs
	}
	f.shard = fs.shards[fs.next%len(fs.shards)]
	fs.next++
	f.shard.followers[f] = struct{}{}
	fs.n++
	h.mu.Unlock()
	h.watch(f.room)
}

// leave removes f from its room and drops the watches join took; it is
// safe to call more than once.
func (h *Hub) leave(f *Follower) {
	h.mu.Lock()
	fs := h.rooms[f.room]
	if _, ok := f.shard.followers[f]; !ok || fs == nil {
		h.mu.Unlock()
		return
	}
	delete(f.shard.followers, f)
	if fs.n--; fs.n == 0 {
		delete(h.rooms, f.room)
	}
	h.mu.Unlock()
	h.unwatch(f.room)
}

// each calls fn for every follower of room, under the hub's read lock.
func (h *Hub) each(room string, fn func(*Follower)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if fs := h.rooms[room]; fs != nil {
		for _, s := range fs.shards {
			for f := range s.followers {
				fn(f)
			}
		}
	}
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
	if fs := h.rooms[room]; fs != nil {
		return fs.n
	}
	return 0
}

// Before reads the store; see Store.Before.
func (h *Hub) Before(ctx context.Context, room string, before int64, n int) ([]Message, error) {
	return h.store.Before(ctx, room, before, n)
}

// Delete erases message seq of room for who, an operator when operator is true
// (who may delete anyone's message); others may delete only their own.
// It returns the deletion record (see Store.Delete), which reaches every
// follower of the room in its order. A message without an author key
// (stored before people had keys) has no author who may delete it.
func (h *Hub) Delete(ctx context.Context, room string, seq int64, who Author, operator bool) (Message, error) {
	if err := ValidateRoom(room); err != nil {
		return Message{}, err
	}
	if !validAuthorKey(who.Key) {
		return Message{}, invalid("author key is not up to %d lower-case hex digits", MaxAuthorKeyLen)
	}
	if who.Key == "" && !operator {
		return Message{}, fmt.Errorf("delete %d in %q: %w", seq, room, ErrNotAuthor)
	}
	if seq < 1 {
		return Message{}, fmt.Errorf("delete %d in %q: %w", seq, room, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	// As a post, once handed to the store the deletion runs to its end.
	rec, err := h.store.Delete(context.WithoutCancel(ctx), Deletion{Room: room, Seq: seq, By: who.Key, Any: operator, Time: h.opts.Now().UTC()})
	if err != nil {
		return Message{}, fmt.Errorf("delete in %q: %w", room, err)
	}
	return rec, nil
}

// Recent reads the store; see Store.Recent.
func (h *Hub) Recent(ctx context.Context, room string, n int) ([]Message, error) {
	return h.store.Recent(ctx, room, n)
}
