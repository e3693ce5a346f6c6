package chat

import (
	"context"
	"sync"
	"sync/atomic"
)

// Event is one thing a follower hands its sink, in the transport's terms
// and no more: the cursor after it, as text (an SSE id: "SEQ-EPOCH"), its
// HTML (SSE data), and what kind of change to the client's log it is. A
// message's Event is shared by every follower of its room and must not be
// modified.
type Event struct {
	ID   []byte
	HTML []byte
	Kind EventKind
}

// EventKind says what an Event does to what the client shows, for a
// transport that cannot apply every kind (the live log without
// JavaScript appends, and nothing else).
type EventKind uint8

const (
	// Appended: a message, or a notice, that goes after what is shown.
	Appended EventKind = iota
	// Members: the room's member list, which replaces the one shown.
	Members
	// Replaces: a snapshot that replaces the whole log, or a deletion
	// record that replaces a message shown before.
	Replaces
)

// kindOf is the kind of m's event: a deletion record replaces the message
// it deleted; any other message is appended.
func kindOf(m Message) EventKind {
	if m.Deletes != 0 {
		return Replaces
	}
	return Appended
}

// Delivery is a message on its way to the followers of its room, with its
// Event rendered once for all of them. It is shared and must not be
// modified.
type Delivery struct {
	Message
	Event
}

// Sink is a follower's way out: one connection's writer. The follower calls
// it under its own lock, so a Sink must never block and never call back into
// the follower from Offer or End.
type Sink interface {
	// Offer hands ev over to be written, in the order offered. It reports
	// false when the sink has no room now; the sink then calls
	// Follower.Pump once it has room again.
	Offer(ev *Event) bool
	// End tells the sink that the follower stopped: the store could not
	// be read (err), so the client should reconnect and resume later. It
	// is called at most once, and never after Follower.Close.
	End(err error)
}

// SnapshotFunc renders a snapshot that replaces a follower's whole log:
// msgs are the room's newest messages (possibly none); reset says why:
// true when the history the client showed is gone (another epoch, a cursor
// beyond the newest message), false when the client is too far behind to
// be replayed (earlier messages are not shown).
type SnapshotFunc func(msgs []Message, reset bool) ([]byte, error)

// TrimmedFunc renders the notice that stands where messages up to after
// were trimmed away by retention.
type TrimmedFunc func(after int64) ([]byte, error)

// followState is where a follower is; every transition is in this file.
type followState uint8

const (
	// replaying: one fill goroutine reads the store after the cursor;
	// live messages only raise seen.
	replaying followState = iota
	// live: each live message is queued as it comes, exactly the next seq.
	live
	// behind: the queue overflowed (a slow client); live messages are
	// ignored until the queue drains, then the follower replays.
	behind
	// ended: closed, or the store failed; nothing more is queued.
	ended
)

// Follower follows one room from a cursor into one Sink: it replays what
// the store holds after the cursor, then goes live, and hands each message
// to the sink exactly once and in seq order, across gaps (filled from the
// store), overflows (resumed from the store), resets (a snapshot) and
// replays too long to send (a snapshot). It has no goroutine of its own:
// the hub's fan-out delivers into it, the sink pumps it, and a fill
// goroutine runs only while the store is read.
type Follower struct {
	hub  *Hub
	room string
	sink Sink
	ctx  context.Context // ends the fill's store reads at Close
	stop context.CancelFunc

	presenceFresh atomic.Bool // no member list was offered yet (see hub_presence.go)
	shard         *shard      // the hub's part of the room f is in; guarded by Hub.mu

	mu       sync.Mutex
	state    followState
	filling  bool     // a fill goroutine runs (it may be about to see a new state)
	cur      Cursor   // the newest event queued: its epoch and seq
	seen     Cursor   // the newest live message met since the fill's last read began
	reset    bool     // the next fill starts with a snapshot
	resetWhy bool     // the snapshot's reset argument
	replayed int      // messages replayed since the follower was last live
	queue    []*Event // not yet taken by the sink; at most QueueSize
	presence *PresenceUpdate
}

// Follow starts following room into sink from cursor from (has: the client
// sent one; without, the follower starts live at the room's newest
// message). It reads the room's head from the store, so an error means the
// store cannot be read (nothing was set up). The first events may be
// offered before Follow returns. The caller must Close the follower.
//
// Where it starts: a cursor of the room's epoch (or of none, a bare seq)
// replays what follows it, or, when more than ReplayMax messages follow,
// a snapshot of the newest (reset false). A cursor of another epoch, or
// beyond the newest message, gets a snapshot (reset true).
func (h *Hub) Follow(ctx context.Context, room string, from Cursor, has bool, sink Sink) (*Follower, error) {
	fctx, stop := context.WithCancel(context.Background())
	f := &Follower{hub: h, room: room, sink: sink, ctx: fctx, stop: stop, state: replaying}
	f.presenceFresh.Store(true)
	// Joined before the head is read, so nothing committed after the read
	// is missed: it either is in the replay or raises seen.
	h.join(f)
	head, err := h.store.Recent(ctx, room, 1)
	if err != nil {
		f.Close()
		return nil, err
	}
	var top Cursor
	if len(head) > 0 {
		top = Cursor{Epoch: head[0].Epoch, Seq: head[0].Seq}
	}
	f.mu.Lock()
	switch {
	case !has:
		f.cur = top
	case from.Epoch != "" && from.Epoch != top.Epoch, from.Seq > top.Seq:
		f.cur, f.reset, f.resetWhy = top, true, true
	case top.Seq-from.Seq > int64(h.opts.ReplayMax):
		f.cur, f.reset, f.resetWhy = top, true, false
	default:
		f.cur = Cursor{Epoch: top.Epoch, Seq: from.Seq}
	}
	f.filling = true
	f.mu.Unlock()
	go f.fill()
	return f, nil
}

// Room returns the followed room.
func (f *Follower) Room() string { return f.room }

// Close stops the follower: nothing more is offered to the sink, and a
// fill under way stops at its next store read. It is safe to call more
// than once.
func (f *Follower) Close() {
	f.mu.Lock()
	f.state = ended
	f.queue, f.presence = nil, nil
	f.mu.Unlock()
	f.stop()
	f.hub.leave(f)
}

// Pump is called by the sink when it has room again: queued events are
// offered, and a follower that fell behind resumes from the store once
// its queue has drained to half.
func (f *Follower) Pump() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pump()
}

// deliver takes a live message from the hub's fan-out, which calls it in
// seq order for the room. Every message it gets is already in the store.
func (f *Follower) deliver(d *Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.state {
	case ended:
		return
	case replaying, behind:
		// The fill reads it from the store; it only needs to know how
		// far the room has got.
		if d.Epoch != f.seen.Epoch || d.Seq > f.seen.Seq {
			f.seen = Cursor{Epoch: d.Epoch, Seq: d.Seq}
		}
		if f.cur.Epoch != "" && d.Epoch != f.cur.Epoch {
			// The history was replaced. The fill's next read may not
			// tell (a new history shorter than the cursor reads as
			// nothing), and it forgets seen when it starts.
			f.reset, f.resetWhy = true, true
		}
		return
	}
	if f.cur.Epoch == "" && f.cur.Seq == 0 {
		f.cur.Epoch = d.Epoch // the room was empty: this is its history
	}
	switch {
	case d.Epoch != f.cur.Epoch:
		// The room's history was replaced while we followed it: what
		// the client shows is gone.
		f.startReset(true)
	case d.Seq <= f.cur.Seq:
		// Already queued (read from the store before going live).
	case d.Seq > f.cur.Seq+1:
		// A gap: only after a feed hiccup. The store has the rest.
		f.startFill()
	case len(f.queue) >= f.hub.opts.QueueSize:
		f.state = behind
		if f.hub.opts.OnOverflow != nil {
			f.hub.opts.OnOverflow(f.room, len(f.queue))
		}
	default:
		f.cur.Seq = d.Seq
		if len(f.queue) == 0 && f.sink.Offer(&d.Event) {
			return // the common case: straight through, nothing queued
		}
		f.push(&d.Event)
		f.pump()
	}
}

// offerPresence keeps the room's newest member list and queues it when
// the follower is live and has room: a list is news only at the newest
// point of the log.
func (f *Follower) offerPresence(u *PresenceUpdate) {
	if len(u.HTML) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == ended {
		return
	}
	f.presence = u
	f.pump()
}

// startReset makes the next fill begin with a snapshot.
func (f *Follower) startReset(reset bool) {
	f.reset, f.resetWhy = true, reset
	f.startFill()
}

// startFill switches to replaying and starts the fill goroutine, unless
// one runs (it sees the new state at its next turn: it has just set live
// and not yet looked again, say).
func (f *Follower) startFill() {
	f.state = replaying
	if !f.filling {
		f.filling = true
		go f.fill()
	}
}

// push queues ev; callers have checked the bound, but for snapshots and
// notices, which may exceed it by one or two.
func (f *Follower) push(ev *Event) { f.queue = append(f.queue, ev) }

// pump offers queued events to the sink while it takes them, resumes a
// follower behind whose queue drained to half, and hands over a waiting
// member list when live and nothing else waits.
func (f *Follower) pump() {
	n := 0
	for _, ev := range f.queue {
		if !f.sink.Offer(ev) {
			break
		}
		n++
	}
	if n > 0 {
		clear(f.queue[:n])
		if f.queue = f.queue[n:]; len(f.queue) == 0 {
			f.queue = nil // an idle follower keeps no buffer
		}
	}
	if f.state == behind && len(f.queue) <= f.hub.opts.QueueSize/2 {
		f.startFill()
		return
	}
	// A member list goes out once everything before it did: lists never
	// pile up in the queue of a slow client, and the newest one waiting
	// replaces the others.
	if f.state == live && f.presence != nil && len(f.queue) == 0 {
		ev := &Event{ID: f.cur.AppendText(nil), HTML: f.presence.HTML, Kind: Members}
		f.presence = nil
		if !f.sink.Offer(ev) {
			f.push(ev)
		}
	}
}

// fill reads the store after the cursor into the queue until it reaches
// the newest message, then goes live. It is the follower's only
// goroutine, started by Follow or startFill, and ends when the follower is
// live, behind (the queue is full: Pump starts the next fill) or ended.
// Store reads happen outside the lock.
//
// Why it cannot miss a message or go live too early: every message the hub
// delivers is already in the store, and deliver records the newest one met
// since the current read began (seen). After a read that returned fewer
// messages than asked, the follower is caught up exactly when seen is not
// beyond what it queued; seen of another epoch than the read's means the
// history was replaced after the read: a snapshot follows (unless the read
// found no history at all: then it is the room's first).
func (f *Follower) fill() {
	opts := &f.hub.opts
	for {
		f.mu.Lock()
		if f.state != replaying {
			f.filling = false
			f.mu.Unlock()
			return
		}
		room := opts.QueueSize - len(f.queue)
		if room <= 0 {
			f.state, f.filling = behind, false
			f.mu.Unlock()
			return
		}
		if f.replayed >= opts.ReplayMax && !f.reset {
			// Replaying this much is more than a page load shows: send
			// what a page load shows instead.
			f.reset, f.resetWhy = true, false
		}
		at, reset, why := f.cur, f.reset, f.resetWhy
		f.seen = Cursor{}
		f.mu.Unlock()

		var (
			evs  []*Event
			next Cursor
			n, k int // messages asked for and read
			err  error
		)
		if reset {
			evs, next, err = f.snapshot(why)
		} else {
			n = min(room, opts.ReplayBatch)
			evs, next, k, err = f.replay(at, n)
		}
		if err != nil {
			f.fail(err)
			return
		}

		f.mu.Lock()
		if f.state != replaying {
			f.filling = false
			f.mu.Unlock()
			return
		}
		if !reset && at.Epoch != "" && next.Epoch != at.Epoch {
			// The store holds another history than the client's.
			f.reset, f.resetWhy = true, true
			f.mu.Unlock()
			continue
		}
		for _, ev := range evs {
			f.push(ev)
		}
		f.cur = next
		if reset {
			f.reset, f.replayed = false, 0
		} else {
			f.replayed += k
			if opts.OnReplay != nil && k > 0 {
				opts.OnReplay(k)
			}
		}
		switch {
		case f.seen.Seq == 0 || f.seen.Epoch == next.Epoch:
			if !reset && k < n && f.seen.Seq <= next.Seq {
				f.state, f.replayed = live, 0
			}
		case next.Epoch == "":
			// The read found no history at all (the room was empty):
			// what arrived meanwhile is the room's first, not a new one.
			// The next read takes it up.
		default:
			// A message of another history arrived after the read began.
			f.reset, f.resetWhy = true, true
		}
		f.pump()
		f.mu.Unlock()
	}
}

// replay reads up to n messages after at and renders them, with a trimmed
// notice where retention left a hole. next is the cursor after them, of
// the epoch the store returned; k is how many messages were read. When the
// store returns another epoch than at's, nothing is rendered.
func (f *Follower) replay(at Cursor, n int) (evs []*Event, next Cursor, k int, err error) {
	msgs, err := f.hub.store.Since(f.ctx, f.room, at.Seq, n)
	if err != nil {
		return nil, at, 0, err
	}
	next = at
	if len(msgs) > 0 && at.Epoch != "" && msgs[0].Epoch != at.Epoch {
		return nil, Cursor{Epoch: msgs[0].Epoch, Seq: at.Seq}, len(msgs), nil
	}
	evs = make([]*Event, 0, len(msgs))
	for _, m := range msgs {
		if m.Seq > next.Seq+1 {
			html, err := f.hub.opts.RenderTrimmed(m.Seq - 1)
			if err != nil {
				return nil, at, 0, err
			}
			evs = append(evs, &Event{ID: Cursor{Epoch: m.Epoch, Seq: m.Seq - 1}.AppendText(nil), HTML: html})
		}
		html, err := f.hub.opts.Render(m)
		if err != nil {
			return nil, at, 0, err
		}
		next = Cursor{Epoch: m.Epoch, Seq: m.Seq}
		evs = append(evs, &Event{ID: next.AppendText(nil), HTML: html, Kind: kindOf(m)})
	}
	return evs, next, len(msgs), nil
}

// snapshot reads the room's newest messages into one event that replaces
// the client's log; next is the cursor after them.
func (f *Follower) snapshot(reset bool) ([]*Event, Cursor, error) {
	msgs, err := f.hub.store.Recent(f.ctx, f.room, f.hub.opts.SnapshotSize)
	if err != nil {
		return nil, Cursor{}, err
	}
	var next Cursor
	if len(msgs) > 0 {
		last := msgs[len(msgs)-1]
		next = Cursor{Epoch: last.Epoch, Seq: last.Seq}
	}
	html, err := f.hub.opts.RenderSnapshot(msgs, reset)
	if err != nil {
		return nil, Cursor{}, err
	}
	return []*Event{{ID: next.AppendText(nil), HTML: html, Kind: Replaces}}, next, nil
}

// fail ends the follower after a store error; the sink ends the stream and
// the client resumes later. A read cut short by Close is no failure.
func (f *Follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == ended {
		return
	}
	f.state, f.filling = ended, false
	f.queue, f.presence = nil, nil
	f.sink.End(err)
}
