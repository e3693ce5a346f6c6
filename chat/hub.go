package chat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueSize is the default bound of a subscriber's queue.
const DefaultQueueSize = 256

// Delivery is a message on its way to subscribers, with its HTML fragment
// rendered once for all of them. It is shared by every subscriber and must
// not be modified; pass it by pointer.
type Delivery struct {
	Message
	HTML []byte

	frame atomic.Pointer[any] // the wire encoding, see Frame
}

// Frame returns d's encoding for the wire: build's result, made by the
// first subscriber that asks and shared by all after it, so a message is
// framed once per fan-out however many subscribers it has. When subscribers
// race, build may run more than once; one result wins and all get it.
func (d *Delivery) Frame(build func(*Delivery) any) any {
	if f := d.frame.Load(); f != nil {
		return *f
	}
	f := build(d)
	if d.frame.CompareAndSwap(nil, &f) {
		return f
	}
	return *d.frame.Load()
}

// Sink receives one subscriber's deliveries straight from the hub, with no
// goroutine of its own in between. The hub calls it from whichever
// goroutine publishes (several posts at once may call Deliver
// concurrently, and not necessarily in seq order) and from its presence
// worker, so a Sink must be safe for concurrent use and must never block.
type Sink interface {
	// Deliver offers d. It reports false when the subscriber cannot take
	// it (its bounded queue is full); the hub then drops the subscriber.
	Deliver(d *Delivery) bool
	// Presence offers the room's member list; only the newest matters.
	Presence(u *PresenceUpdate)
	// Dropped is called once, after the hub removed the subscriber for
	// being too slow.
	Dropped()
}

// RenderFunc renders the fragment of a message, as sent on the wire.
type RenderFunc func(Message) ([]byte, error)

// HubOptions configures a Hub. Zero values select defaults.
type HubOptions struct {
	// QueueSize bounds each subscriber's queue (DefaultQueueSize).
	QueueSize int
	// Render renders a message's fragment once per message.
	Render RenderFunc
	// Now returns the time stamped on new messages (time.Now).
	Now func() time.Time
	// OnDrop, if set, is called (without locks held) for each subscriber
	// dropped because its queue overflowed.
	OnDrop func(room string, queued int)
	// OnDeliver, if set, is called after each fan-out with the message
	// and the number of subscribers it was queued for.
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

// Hub groups subscribers by room and fans each posted message out to every
// subscriber of its room. Posting never waits on a subscriber: each has a
// bounded queue, and one whose queue is full is dropped.
//
// When the store is a Feed (shared by many nodes), the hub watches the feed
// for each room that has local subscribers and fans out what it delivers;
// Post then leaves fan-out to the feed, so each message reaches each
// subscriber through one path only.
type Hub struct {
	store Store
	feed  Feed // nil for a single-node store
	opts  HubOptions

	presence *hubPresence // broadcasts member lists; see hub_presence.go

	mu    sync.RWMutex
	rooms map[string]map[*Subscription]struct{}

	wmu     sync.Mutex // guards watches; never held with mu
	watches map[string]*watch
}

// watch is a feed subscription shared by a room's local subscribers.
// ready is closed once the feed watches the room (stop is set then).
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Render == nil {
		opts.Render = func(m Message) ([]byte, error) { return []byte(m.Text), nil }
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
	h := &Hub{store: store, opts: opts, rooms: make(map[string]map[*Subscription]struct{})}
	h.presence = newHubPresence(opts.Presence, opts.RenderPresence, opts.PresenceInterval)
	if f, ok := store.(Feed); ok {
		h.feed = f
		h.watches = make(map[string]*watch)
	}
	return h
}

// Render renders m with the hub's RenderFunc.
func (h *Hub) Render(m Message) ([]byte, error) { return h.opts.Render(m) }

// Post validates room, author and text, appends the message to the store
// and, once it is stored, queues it for every subscriber of room. It returns
// the stored message. Invalid input (author.Name must pass NormalizeName,
// author.Key must be lower-case hex) returns an error wrapping ErrInvalid
// and stores nothing.
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
	// poster goes away: a message stored but never fanned out would reach
	// live subscribers only at their next gap. Stores bound their own time.
	m, err := h.store.Append(context.WithoutCancel(ctx), Message{Room: room, Author: name, AuthorKey: author.Key, Text: text, Time: h.opts.Now().UTC()})
	if err != nil {
		return Message{}, fmt.Errorf("post to %q: %w", room, err)
	}
	if h.feed == nil {
		h.Publish(m)
	}
	return m, nil
}

// Publish queues an already stored message for the subscribers of its room.
// Subscribers whose queue is full are dropped. Publish never blocks on a
// subscriber. Messages of one room may reach subscribers out of seq order
// when posts race; subscribers fill gaps from the store.
func (h *Hub) Publish(m Message) {
	if h.Subscribers(m.Room) == 0 {
		return
	}
	// Rendered outside the lock, so rendering never delays Subscribe or
	// posts to other rooms.
	html, err := h.opts.Render(m)
	if err != nil {
		// Rendering plain data cannot fail short of a bug; subscribers
		// find the message in the store when the next one shows the gap.
		return
	}
	// One Delivery shared by every subscriber: queues hold pointers, so a
	// full queue costs 8 bytes a slot, not a copy of the message.
	d := &Delivery{Message: m, HTML: html}
	var slow []*Subscription
	n := 0
	h.mu.RLock()
	for s := range h.rooms[m.Room] {
		if s.sink.Deliver(d) {
			n++
		} else {
			slow = append(slow, s)
		}
	}
	h.mu.RUnlock()
	if h.opts.OnDeliver != nil {
		h.opts.OnDeliver(m, n)
	}
	for _, s := range slow {
		if s.drop() && h.opts.OnDrop != nil {
			h.opts.OnDrop(m.Room, h.opts.QueueSize)
		}
	}
}

// Subscribe adds a subscriber to room whose deliveries arrive on channels
// (see Subscription). The caller must Close it.
func (h *Hub) Subscribe(room string) *Subscription {
	c := &chanSink{
		c:       make(chan *Delivery, h.opts.QueueSize),
		dropped: make(chan struct{}),
		// One slot: a member list not yet taken is replaced by a newer one.
		presence: make(chan *PresenceUpdate, 1),
	}
	s := h.SubscribeSink(room, c)
	s.chans = c
	return s
}

// SubscribeSink adds a subscriber to room whose deliveries go to sink (the
// Subscription's channels stay nil). The caller must Close it. Deliveries
// may start before SubscribeSink returns.
func (h *Hub) SubscribeSink(room string, sink Sink) *Subscription {
	s := &Subscription{hub: h, room: room, sink: sink}
	s.presenceFresh.Store(true)
	h.mu.Lock()
	subs := h.rooms[room]
	if subs == nil {
		subs = make(map[*Subscription]struct{})
		h.rooms[room] = subs
	}
	subs[s] = struct{}{}
	h.mu.Unlock()
	h.watch(room)
	return s
}

// watch takes a reference on room's feed subscription and member watch,
// starting them for the room's first local subscriber; it returns once the
// feed watches the room, so the caller's next store read misses nothing.
// The feed's Watch may wait on the network (Redis reads the room's newest
// seq): it runs outside wmu, so other rooms' subscribers never wait for it.
// unwatch undoes it.
func (h *Hub) watch(room string) {
	h.watchPresence(room)
	if h.feed == nil {
		return
	}
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
		w.stop = h.feed.Watch(room, h.Publish)
		close(w.ready)
	} else {
		<-w.ready
	}
}

// unwatch drops the references watch took, stopping the feed subscription
// and the member watch with the last.
func (h *Hub) unwatch(room string) {
	h.unwatchPresence(room)
	if h.feed == nil {
		return
	}
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

// Subscribers returns the number of subscribers of room.
func (h *Hub) Subscribers(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms[room])
}

func (h *Hub) remove(s *Subscription) bool {
	h.mu.Lock()
	subs := h.rooms[s.room]
	if _, ok := subs[s]; !ok {
		h.mu.Unlock()
		return false
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(h.rooms, s.room)
	}
	h.mu.Unlock()
	return true
}

// Subscription is one subscriber of a room. For one made by Subscribe,
// deliveries arrive on C in the order they were published; Dropped is
// closed when the hub drops the subscriber because its queue overflowed.
// The channel C is never closed. A Delivery is shared by all subscribers
// and must not be modified.
type Subscription struct {
	hub   *Hub
	room  string
	sink  Sink
	chans *chanSink // nil for SubscribeSink

	presenceFresh atomic.Bool // no member list was offered yet
}

// C returns the channel deliveries arrive on (nil for SubscribeSink).
func (s *Subscription) C() <-chan *Delivery {
	if s.chans == nil {
		return nil
	}
	return s.chans.c
}

// Dropped is closed when the subscriber was dropped for being too slow
// (nil for SubscribeSink: the sink's Dropped is called instead).
func (s *Subscription) Dropped() <-chan struct{} {
	if s.chans == nil {
		return nil
	}
	return s.chans.dropped
}

// chanSink is the Sink of Subscribe: a bounded queue and a one-slot
// presence channel.
type chanSink struct {
	c        chan *Delivery
	dropped  chan struct{}
	presence chan *PresenceUpdate
}

func (c *chanSink) Deliver(d *Delivery) bool {
	select {
	case c.c <- d:
		return true
	default:
		return false
	}
}

func (c *chanSink) Dropped() { close(c.dropped) }

// Presence queues u, replacing an update not yet taken: only the newest
// list matters. Only the presence worker calls it, so the loop ends at the
// latest on its second turn.
func (c *chanSink) Presence(u *PresenceUpdate) {
	for {
		select {
		case c.presence <- u:
			return
		default:
		}
		select {
		case <-c.presence:
		default:
		}
	}
}

// Room returns the subscribed room.
func (s *Subscription) Room() string { return s.room }

// drop removes the subscriber and closes Dropped; it reports whether this
// call did it.
func (s *Subscription) drop() bool {
	if !s.hub.remove(s) {
		return false
	}
	s.sink.Dropped() // once: only one remove succeeds
	// drop runs inside Publish, which may be the feed's delivery goroutine:
	// stopping the feed from here could wait on ourselves.
	go s.hub.unwatch(s.room)
	return true
}

// Close removes the subscriber from its room. It is safe to call more than
// once and after a drop.
func (s *Subscription) Close() {
	if s.hub.remove(s) {
		s.hub.unwatch(s.room)
	}
}

// Since reads the store; see Store.Since.
func (h *Hub) Since(ctx context.Context, room string, after int64, limit int) ([]Message, error) {
	return h.store.Since(ctx, room, after, limit)
}

// Recent reads the store; see Store.Recent.
func (h *Hub) Recent(ctx context.Context, room string, n int) ([]Message, error) {
	return h.store.Recent(ctx, room, n)
}
