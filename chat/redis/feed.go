package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// The fan-out, in one picture:
//
//	Watch/stop ─▶ rooms, dirty ─wake─▶ run: SUBSCRIBE/UNSUBSCRIBE, pings,
//	                                        replaces a dead session
//	session: one go-redis PubSub ─▶ receive: per room, deliver seq last+1
//	                                 live, fill anything else from the stream
//
// Every message goes through the receive goroutine of the current session,
// and a session's receiver ends before the next one starts, so a room's
// watchers are called from one goroutine at a time, in seq order.
//
// A room's delivery point is last, the newest seq its watchers were given.
// Whenever Redis confirms a SUBSCRIBE to a room's channel (the first one,
// and again each time go-redis reconnects and resubscribes, or a new
// session starts), everything published from then on reaches the session;
// what was stored before is read from the stream after last, before the
// next live message is looked at. A live message that is not last+1 is a
// duplicate (dropped) or shows a gap (filled from the stream).
//
// A room's delivery point also has an epoch, the history last counts in. A
// live message of another epoch means the history was replaced (a janitor
// removed the room as one of the least recently active, or Redis lost its
// data): seq 1 of the new epoch is delivered at once, anything else is read
// from the stream with the epoch it belongs to (one MULTI/EXEC). A room
// with no keys at all (removed, nothing posted since) is left as it was
// delivered: its next append brings the new epoch. A catch-up that finds
// the room's newest seq below last while its epoch key still holds the
// same epoch means Redis lost writes that were delivered while the epoch
// survived (a failover): the catch-up gives the room a new epoch
// (compare-and-set, see bumpEpochScript) and delivers the stream from 0
// under it, so the loss shows as a new history instead of old seqs reused.
// A removal, whose keys go all at once and whose next append sets a new
// epoch, never looks like that.

// fillBatch is how many stream entries one catch-up read asks for.
const fillBatch = 512

// retryDelay is how soon a failed catch-up is tried again.
const retryDelay = 200 * time.Millisecond

// watcher is one Watch call.
type watcher struct {
	fn      func(chat.Message)
	stopped atomic.Bool
}

// room is a watched room. watchers is guarded by Store.mu and replaced, never
// changed in place, so a copy taken under the lock can be called without it.
// last, epoch and known belong to the receive goroutine once the room is in
// Store.rooms.
type room struct {
	name     string
	channel  string
	watchers []*watcher
	last     int64  // newest seq delivered (or the baseline Watch read)
	epoch    string // the epoch last counts in; "" for a room without one yet
	known    bool   // last and epoch are known; false when Watch could not read them
}

// Watch implements chat.Store. fn is called with each message stored in room
// from now on, by any node, in seq order and never concurrently for one room;
// after a lost connection the missed messages are read from the stream
// before live delivery resumes. "Now" is the room's newest seq, which the
// first watcher of a room reads from Redis (bounded by the timeouts in
// Options) so that a reader who calls Watch and then Since misses nothing;
// do not call Watch while holding a lock that fn takes. fn must not block:
// all rooms share one receive goroutine. stop may be called more than once,
// also from fn; once it returns, fn is not called again, but for at most one
// call already under way. A closed store never calls fn.
func (s *Store) Watch(name string, fn func(chat.Message)) (stop func()) {
	w := &watcher{fn: fn}
	if s.closed.Load() {
		return func() {}
	}
	s.mu.Lock()
	r := s.rooms[name]
	if r != nil {
		r.watchers = append(slices.Clip(r.watchers), w)
	}
	s.mu.Unlock()
	if r == nil {
		// The first watcher: read where the room is now, outside the lock.
		last, epoch, err := s.head(s.ctx, name)
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			return func() {}
		}
		if r = s.rooms[name]; r != nil {
			// Another first watcher came first; its baseline is as good.
			r.watchers = append(slices.Clip(r.watchers), w)
		} else {
			r = &room{name: name, channel: s.keys(name).live, watchers: []*watcher{w}, last: last, epoch: epoch, known: err == nil}
			s.rooms[name] = r
			s.dirty[name] = struct{}{}
		}
		s.mu.Unlock()
		if err != nil && s.ctx.Err() == nil {
			s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis watch: cannot read the room's newest seq; delivering from the first message seen",
				slog.String("room", name), slog.Any("err", err))
		}
		s.kick()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			w.stopped.Store(true)
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.rooms[name] != r {
				return // the store was closed
			}
			r.watchers = slices.DeleteFunc(slices.Clone(r.watchers), func(x *watcher) bool { return x == w })
			if len(r.watchers) == 0 {
				delete(s.rooms, name)
				s.dirty[name] = struct{}{}
				s.kick()
			}
		})
	}
}

// head reads the newest seq of room (0 for a room without messages) and
// its epoch ("" for a room without one), together.
func (s *Store) head(ctx context.Context, name string) (int64, string, error) {
	k := s.keys(name)
	vals, err := s.client.MGet(ctx, k.seq, k.epoch).Result()
	if err != nil {
		return 0, "", err
	}
	return parseHead(vals)
}

// bumpEpochScript gives a room a new epoch, KEYS[1] := ARGV[2], unless its
// epoch key has changed since the caller read ARGV[1] ("" for none): of
// several nodes noticing one loss, the first one's epoch wins and the
// others adopt it. It returns the epoch now in force, or "" when the room
// has no keys left (a janitor removed it meanwhile): a removed room gets no
// epoch key but from its next append.
//
// KEYS: epoch, seq counter, stream.
var bumpEpochScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur and redis.call('EXISTS', KEYS[2], KEYS[3]) == 0 then return '' end
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return cur
`)

// kick asks run to reconcile the subscriptions; it never blocks.
func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// session is one go-redis PubSub and its receive goroutine. go-redis
// reconnects and resubscribes a PubSub by itself after an error; run
// replaces the whole session only when it stops answering pings.
type session struct {
	ps         *goredis.PubSub
	subscribed map[string]*room // as run last asked for; run's own
	pingAt     time.Time        // when run sent the last ping; run's own
	heard      atomic.Int64     // unix ns of the receiver's last sign of life
	busy       atomic.Bool      // the receiver is handling a reply, not reading
	quit       chan struct{}    // closed to end the receiver
	done       chan struct{}    // closed when the receiver has ended
}

// run owns the sessions: it starts one when the first room is watched,
// keeps its subscriptions in line with the watched rooms, pings it, and
// replaces it when it stops answering. It ends at Close.
func (s *Store) run() {
	defer s.wg.Done()
	var sess *session
	health := time.NewTicker(s.opts.HealthInterval)
	defer health.Stop()
	retry := time.NewTimer(retryDelay)
	retry.Stop()
	for {
		select {
		case <-s.done:
			if sess != nil {
				s.end(sess)
			}
			return
		case <-s.wake:
		case <-s.retry:
			retry.Reset(retryDelay)
			continue
		case <-retry.C:
			// A Pong wakes the receiver, which then retries its catch-ups.
			if sess != nil {
				s.ping(sess)
			}
			continue
		case <-health.C:
			if sess == nil {
				continue
			}
			if sess.busy.Load() {
				// A long catch-up is not a dead connection; the reply to
				// the last ping waits in the socket.
				continue
			}
			if !sess.pingAt.IsZero() && sess.heard.Load() < sess.pingAt.UnixNano() {
				s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out connection does not answer; replacing it",
					slog.Duration("silent_for", time.Since(sess.pingAt)))
				s.end(sess)
				sess = nil // reconcile starts a new one if rooms are watched
			} else {
				sess.pingAt = time.Now()
				s.ping(sess)
				continue
			}
		}
		sess = s.reconcile(sess)
	}
}

func (s *Store) ping(sess *session) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout+s.opts.WriteTimeout)
	defer cancel()
	_ = sess.ps.Ping(ctx) // a failure shows as silence, or as an error to the receiver
}

// end stops a session and waits for its receiver.
func (s *Store) end(sess *session) {
	close(sess.quit)
	_ = sess.ps.Close() // unblocks the receiver's read
	<-sess.done
}

// reconcile subscribes the session to the watched rooms that changed (a new
// session: all of them) and unsubscribes it from rooms no longer watched.
// It returns the session, started if rooms are watched and none was.
func (s *Store) reconcile(sess *session) *session {
	s.mu.Lock()
	names := s.dirty
	if sess == nil {
		if len(s.rooms) == 0 {
			clear(s.dirty)
			s.mu.Unlock()
			return nil
		}
		names = make(map[string]struct{}, len(s.rooms))
		for name := range s.rooms {
			names[name] = struct{}{}
		}
	}
	want := make(map[string]*room, len(names))
	for name := range names {
		want[name] = s.rooms[name] // nil: no longer watched
	}
	clear(s.dirty)
	s.mu.Unlock()

	start := sess == nil
	if start {
		sess = &session{
			ps:         s.client.Subscribe(s.ctx), // connects on first use
			subscribed: make(map[string]*room),
			quit:       make(chan struct{}),
			done:       make(chan struct{}),
		}
		sess.heard.Store(time.Now().UnixNano())
	}
	var sub, unsub []string
	for name, r := range want {
		old := sess.subscribed[name]
		switch {
		case r != nil && old != r:
			// Also for a room watched again before its UNSUBSCRIBE went
			// out: the confirmation makes the receiver catch the new room
			// up from its own baseline.
			sub = append(sub, r.channel)
			sess.subscribed[name] = r
		case r == nil && old != nil:
			unsub = append(unsub, old.channel)
			delete(sess.subscribed, name)
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout+s.opts.WriteTimeout)
	defer cancel()
	// Errors are left to the receiver: go-redis remembers the channels of a
	// failed SUBSCRIBE and subscribes them when it reconnects.
	if len(sub) > 0 {
		_ = sess.ps.Subscribe(ctx, sub...)
	}
	if len(unsub) > 0 {
		_ = sess.ps.Unsubscribe(ctx, unsub...)
	}
	if start {
		go s.receive(sess)
	}
	return sess
}

// receive reads the session's PubSub until the session ends. It is the
// only goroutine that calls watchers while the session lasts.
func (s *Store) receive(sess *session) {
	defer close(sess.done)
	behind := make(map[*room]struct{}) // rooms whose catch-up failed
	var wait time.Duration
	for {
		v, err := sess.ps.Receive(s.ctx)
		if err != nil {
			// go-redis has already dropped the connection, and redials on
			// the next Receive (on a cluster, to the node the slot map
			// names then); back off while Redis is away.
			s.reload()
			if !backoff(&wait, sess.quit) {
				return
			}
			continue
		}
		wait = 0
		sess.busy.Store(true)
		sess.heard.Store(time.Now().UnixNano())
		switch v := v.(type) {
		case *goredis.Subscription:
			if v.Kind == "subscribe" {
				if r := s.watched(v.Channel); r != nil {
					s.catchUp(r, behind)
				}
			}
		case *goredis.Message:
			s.live(v, behind)
		case *goredis.Pong:
			for r := range behind {
				if s.watched(r.channel) != r {
					delete(behind, r)
					continue
				}
				s.catchUp(r, behind)
			}
		}
		sess.heard.Store(time.Now().UnixNano())
		sess.busy.Store(false)
	}
}

// watched returns the watched room whose channel is ch, or nil.
func (s *Store) watched(ch string) *room {
	name, ok := s.roomOf(ch)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[name]
}

// liveMessage is what appendScript publishes.
type liveMessage struct {
	Seq    int64  `json:"seq"`
	Epoch  string `json:"epoch"`
	Author string `json:"author"`
	Key    string `json:"key"`
	Text   string `json:"text"`
	Time   string `json:"time"`
}

// live handles a message from the channel.
func (s *Store) live(msg *goredis.Message, behind map[*room]struct{}) {
	r := s.watched(msg.Channel)
	if r == nil {
		return // an UNSUBSCRIBE is on its way
	}
	m, err := decodeLive(r.name, msg.Payload)
	if err != nil {
		s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out: bad message; reading the stream instead",
			slog.String("room", r.name), slog.Any("err", err))
		s.catchUp(r, behind)
		return
	}
	if m.Epoch == "" {
		m.Epoch = r.epoch // published by a node from before epochs
	}
	if !r.known {
		r.last, r.epoch, r.known = m.Seq-1, m.Epoch, true
	}
	_, late := behind[r]
	if m.Epoch != r.epoch {
		switch {
		case r.epoch == "" && m.Seq > r.last:
			// The room's first epoch, set by this append: same history.
			r.epoch = m.Epoch
		case m.Seq == 1 && !late:
			// A new history starts with m: the room was removed (by a
			// janitor, for MaxRooms) or Redis lost its data.
			s.opts.Logger.LogAttrs(s.ctx, slog.LevelInfo, "redis fan-out: room starts a new history (removed as inactive, or lost by Redis)",
				slog.String("room", r.name), slog.String("epoch", m.Epoch), slog.String("was_epoch", r.epoch), slog.Int64("was", r.last))
			r.epoch, r.last = m.Epoch, 0
		default:
			// A new history that began while we were not listening, or m
			// was published before another node changed the epoch: the
			// stream and the epoch key read together tell which.
			s.catchUp(r, behind)
			return
		}
	}
	if m.Seq <= r.last {
		return // already delivered by a catch-up
	}
	if !late && m.Seq == r.last+1 {
		s.deliver(r, m)
		return
	}
	s.catchUp(r, behind) // a gap: the stream has the missing ones and m
}

func decodeLive(name, payload string) (chat.Message, error) {
	var lm liveMessage
	if err := json.Unmarshal([]byte(payload), &lm); err != nil {
		return chat.Message{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, lm.Time)
	if err != nil {
		return chat.Message{}, fmt.Errorf("seq %d: bad time: %w", lm.Seq, err)
	}
	if lm.Seq <= 0 {
		return chat.Message{}, fmt.Errorf("bad seq %d", lm.Seq)
	}
	return chat.Message{Room: name, Seq: lm.Seq, Epoch: lm.Epoch, Author: lm.Author, AuthorKey: lm.Key, Text: lm.Text, Time: t}, nil
}

// catchUp delivers what the stream holds after r.last. When Redis cannot be
// read, the room waits in behind: live messages are not delivered past the
// hole, and run wakes the receiver to try again.
func (s *Store) catchUp(r *room, behind map[*room]struct{}) {
	if err := s.fill(r); err != nil {
		s.reload()
		if s.ctx.Err() == nil {
			s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out: catch-up failed; will retry",
				slog.String("room", r.name), slog.Int64("after", r.last), slog.Any("err", err))
		}
		behind[r] = struct{}{}
		select {
		case s.retry <- struct{}{}:
		default:
		}
		return
	}
	delete(behind, r)
}

// fill delivers the stream after r.last, reading it with the room's epoch
// and counter; see the top of this file for what a change of epoch, or a
// counter below r.last, makes of it.
func (s *Store) fill(r *room) error {
	if !r.known {
		last, epoch, err := s.head(s.ctx, r.name)
		if err != nil {
			return err
		}
		r.last, r.epoch, r.known = last, epoch, true
		return nil
	}
	for {
		after := r.last
		var top *goredis.XMessageSliceCmd // the newest entry, read with the rest
		snap, err := s.read(s.ctx, r.name, func(p goredis.Pipeliner, log string) *goredis.XMessageSliceCmd {
			top = p.XRevRangeN(s.ctx, log, "+", "-", 1)
			return p.XRangeN(s.ctx, log, entryID(after+1), "+", fillBatch)
		})
		if err != nil {
			return err
		}
		// An epoch key that is missing while r has an epoch (lost with the
		// data, no append since) changes nothing yet: the counter check
		// below, or the next append, decides.
		if snap.epoch != "" && snap.epoch != r.epoch {
			if r.epoch == "" {
				// The room's first epoch (its data is from before
				// epochs): the same history goes on.
				r.epoch = snap.epoch
			} else {
				// Another history (the room was removed and posted to
				// again, or Redis lost its data): all of what the stream
				// holds now is news to the watchers.
				s.opts.Logger.LogAttrs(s.ctx, slog.LevelInfo, "redis fan-out: room has a new history (removed as inactive, or lost by Redis)",
					slog.String("room", r.name), slog.String("epoch", snap.epoch), slog.String("was_epoch", r.epoch), slog.Int64("was", r.last))
				r.epoch, r.last = snap.epoch, 0
				continue
			}
		}
		for _, x := range snap.entries {
			m, err := decodeEntry(r.name, x)
			if err != nil {
				// Nothing will make it readable: skip it rather than stall.
				s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out: skipping a bad stream entry",
					slog.String("room", r.name), slog.String("id", x.ID), slog.Any("err", err))
				if seq, perr := entrySeq(x.ID); perr == nil && seq > r.last {
					r.last = seq
				}
				continue
			}
			s.deliver(r, m)
		}
		if len(snap.entries) == fillBatch {
			continue
		}
		// The room's newest seq, as the next append will see it: a counter
		// lost on its own is taken from the stream again.
		newest := snap.seq
		if xs := top.Val(); len(xs) > 0 {
			if seq, err := entrySeq(xs[0].ID); err == nil {
				newest = max(newest, seq)
			}
		}
		if len(snap.entries) > 0 || newest >= r.last {
			return nil
		}
		if newest == 0 && snap.epoch == "" {
			// The room is gone altogether (removed by a janitor, a flush,
			// a restart without persistence) and nothing was appended
			// since: its next append starts a new epoch, taken up then.
			return nil
		}
		// Nothing after last, and the room's newest seq below it: Redis
		// lost writes the watchers were given (a failover to a replica
		// that had not got them, a restart from an older file). Seqs after
		// it would be handed out again for other messages: make the loss
		// a new epoch, and deliver what is stored now under it.
		k := s.keys(r.name)
		epoch, err := bumpEpochScript.Run(s.ctx, s.client, []string{k.epoch, k.seq, k.log}, r.epoch, chat.NewEpoch()).Text()
		if err != nil {
			return err
		}
		if epoch == "" {
			continue // removed meanwhile: read again, to find it gone (or new)
		}
		s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out: room's seq went back; Redis lost data; starting a new epoch",
			slog.String("room", r.name), slog.Int64("was", r.last), slog.Int64("now", newest),
			slog.String("was_epoch", r.epoch), slog.String("epoch", epoch))
		r.epoch, r.last = epoch, 0
	}
}

// deliver calls r's watchers with m, in r's epoch, unless it is not newer
// than r.last. Its callers have brought r to m's epoch (and reset last when
// the epoch changed), so a new history's messages are not taken for old.
func (s *Store) deliver(r *room, m chat.Message) {
	if m.Seq <= r.last {
		return
	}
	r.last = m.Seq
	m.Epoch = r.epoch
	s.mu.Lock()
	ws := r.watchers
	s.mu.Unlock()
	for _, w := range ws {
		if !w.stopped.Load() {
			w.fn(m)
		}
	}
}
