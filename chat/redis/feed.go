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
//	Watch/stop ─▶ rooms, dirty ─wake─▶ run: (S)SUBSCRIBE/(S)UNSUBSCRIBE,
//	                                        pings, replaces a dead session
//	session: one go-redis PubSub ─▶ receive: per room, deliver seq last+1
//	                                 live, fill anything else from the stream
//
// On one Redis there is one session (PUBLISH/SUBSCRIBE, so Redis 5 works);
// on a cluster one per master that owns watched rooms (sharded Pub/Sub:
// SPUBLISH/SSUBSCRIBE, so a message travels only within its shard). A
// room's messages go through the receive goroutine of the session it is
// subscribed on (room.sess), and a room moves to another session only
// after its old session's receiver has ended, so a room's watchers are
// called from one goroutine at a time, in seq order.
//
// A room's delivery point is last, the newest seq its watchers were given.
// Whenever Redis confirms a SUBSCRIBE (or SSUBSCRIBE) to a room's channel
// (the first one, and again each time go-redis reconnects and resubscribes,
// or a new session starts), everything published from then on reaches the session;
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
	last     int64    // newest seq delivered (or the baseline Watch read)
	epoch    string   // the epoch last counts in; "" for a room without one yet
	known    bool     // last and epoch are known; false when Watch could not read them
	sess     *session // the session subscribed to the channel, whose receiver delivers; guarded by Store.mu
}

// Watch implements chat.Store. fn is called with each message stored in room
// from now on, by any node, in seq order and never concurrently for one room;
// after a lost connection the missed messages are read from the stream
// before live delivery resumes. "Now" is the room's newest seq, which the
// first watcher of a room reads from Redis (bounded by the timeouts in
// Options) so that a reader who calls Watch and then Since misses nothing;
// do not call Watch while holding a lock that fn takes. fn must not block:
// all rooms share one receive goroutine (on a cluster: all rooms of a master). stop may be called more than once,
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

// session is one go-redis PubSub and its receive goroutine. On one Redis
// there is one session, and go-redis reconnects and resubscribes it by
// itself after an error; run replaces it only when it stops answering
// pings. On a cluster there is one session per master that owns a watched
// room (addr), subscribed with SSUBSCRIBE one channel at a time; it is
// never reconnected: its first error, an unsolicited SUNSUBSCRIBE (the
// slot moved) or silence ends it, and run subscribes its rooms again where
// the slot map says they are now (see cluster.go).
type session struct {
	addr       string // the master's address on a cluster; "" on one Redis
	ps         *goredis.PubSub
	subscribed map[string]*room // as run last asked for; run's own
	unsubs     map[string]int   // SUNSUBSCRIBEs sent, not yet confirmed; guarded by Store.mu
	pingAt     time.Time        // when run sent the last ping; run's own
	heard      atomic.Int64     // unix ns of the receiver's last sign of life
	busy       atomic.Bool      // the receiver is handling a reply, not reading
	quit       chan struct{}    // closed to end the receiver
	done       chan struct{}    // closed when the receiver has ended
}

// run owns the sessions: it starts one when a room is watched (on a
// cluster: when a room of a master without one is), keeps their
// subscriptions in line with the watched rooms, pings them, and replaces
// one that stops answering (on a cluster also one that broke). It ends at
// Close.
func (s *Store) run() {
	defer s.wg.Done()
	sessions := make(map[string]*session) // by addr
	health := time.NewTicker(s.opts.HealthInterval)
	defer health.Stop()
	retry := time.NewTimer(retryDelay)
	retry.Stop()
	for {
		select {
		case <-s.done:
			for _, sess := range sessions {
				s.end(sess)
			}
			return
		case <-s.wake:
		case sess := <-s.broken:
			if sessions[sess.addr] == sess {
				s.drop(sessions, sess)
			}
		case <-s.retry:
			retry.Reset(retryDelay)
			continue
		case <-retry.C:
			// A Pong wakes a receiver, which then retries its catch-ups;
			// rooms that found no master are tried again below.
			for _, sess := range sessions {
				s.ping(sess)
			}
		case <-health.C:
			for _, sess := range sessions {
				if sess.busy.Load() {
					// A long catch-up is not a dead connection; the reply
					// to the last ping waits in the socket.
					continue
				}
				if !sess.pingAt.IsZero() && sess.heard.Load() < sess.pingAt.UnixNano() {
					s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out connection does not answer; replacing it",
						slog.String("addr", sess.addr), slog.Duration("silent_for", time.Since(sess.pingAt)))
					s.drop(sessions, sess) // reconcile starts a new one
				} else {
					sess.pingAt = time.Now()
					s.ping(sess)
				}
			}
		}
		if s.reconcile(sessions) {
			retry.Reset(retryDelay)
		}
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

// drop ends sess and marks its rooms for reconcile, which subscribes them
// on a new session (on a cluster: their master's now), whose confirmation
// catches each up from its stream.
func (s *Store) drop(sessions map[string]*session, sess *session) {
	s.end(sess)
	delete(sessions, sess.addr)
	s.reload()
	s.mu.Lock()
	for name := range sess.subscribed {
		s.dirty[name] = struct{}{}
	}
	s.mu.Unlock()
}

// reconcile subscribes the watched rooms that changed (those of a dropped
// session, too) and unsubscribes rooms no longer watched. A room is
// subscribed on the session of its master (on one Redis: the one
// session), started if there is none. A room stays on its session while
// that lasts: a slot that moves ends the session (see receive). It
// reports whether some rooms found no master and wait for a retry.
func (s *Store) reconcile(sessions map[string]*session) (again bool) {
	s.mu.Lock()
	want := make(map[string]*room, len(s.dirty))
	for name := range s.dirty {
		want[name] = s.rooms[name] // nil: no longer watched
	}
	clear(s.dirty)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout+s.opts.WriteTimeout)
	defer cancel()
	sub := make(map[*session][]string)
	unsub := make(map[*session][]string)
	var started []*session
	for name, r := range want {
		var at *session // the session subscribed to the room's channel
		for _, x := range sessions {
			if x.subscribed[name] != nil {
				at = x
				break
			}
		}
		if r == nil || (at != nil && at.subscribed[name] == r) {
			if r == nil && at != nil {
				unsub[at] = append(unsub[at], at.subscribed[name].channel)
				delete(at.subscribed, name)
			}
			continue
		}
		addr, node, err := s.route(ctx, r.channel)
		if err != nil {
			s.mu.Lock()
			s.dirty[name] = struct{}{}
			s.mu.Unlock()
			again = true
			continue
		}
		if at != nil && at.addr != addr {
			unsub[at] = append(unsub[at], at.subscribed[name].channel)
			delete(at.subscribed, name)
		}
		sess := sessions[addr]
		if sess == nil {
			sess = s.newSession(addr, node)
			sessions[addr] = sess
			started = append(started, sess)
		}
		// Also for a room watched again before its UNSUBSCRIBE went out:
		// the confirmation makes the receiver catch the new room up from
		// its own baseline.
		sess.subscribed[name] = r
		s.mu.Lock()
		r.sess = sess
		s.mu.Unlock()
		sub[sess] = append(sub[sess], r.channel)
	}
	// Errors are left to the receiver: on one Redis go-redis remembers the
	// channels of a failed SUBSCRIBE and subscribes them when it
	// reconnects; on a cluster the error ends the session.
	for sess, chs := range sub {
		if s.cluster == nil {
			_ = sess.ps.Subscribe(ctx, chs...)
			continue
		}
		for _, ch := range chs { // one slot per command
			_ = sess.ps.SSubscribe(ctx, ch)
		}
	}
	for sess, chs := range unsub {
		if s.cluster == nil {
			_ = sess.ps.Unsubscribe(ctx, chs...)
			continue
		}
		s.mu.Lock()
		for _, ch := range chs {
			sess.unsubs[ch]++
		}
		s.mu.Unlock()
		for _, ch := range chs {
			_ = sess.ps.SUnsubscribe(ctx, ch)
		}
	}
	for _, sess := range started {
		go s.receive(sess)
	}
	return again
}

// route returns where channel ch is subscribed: on a cluster, the address
// and client of its slot's master; on one Redis, "" and nil.
func (s *Store) route(ctx context.Context, ch string) (string, *goredis.Client, error) {
	if s.cluster == nil {
		return "", nil, nil
	}
	node, err := s.cluster.MasterForKey(ctx, ch)
	if err != nil {
		s.reload()
		return "", nil, err
	}
	return node.Options().Addr, node, nil
}

// newSession makes a session that connects on its first SUBSCRIBE: to the
// one Redis, or (node not nil) to that cluster master.
func (s *Store) newSession(addr string, node *goredis.Client) *session {
	sess := &session{
		addr:       addr,
		subscribed: make(map[string]*room),
		unsubs:     make(map[string]int),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if node != nil {
		sess.ps = node.SSubscribe(s.ctx)
	} else {
		sess.ps = s.client.Subscribe(s.ctx)
	}
	sess.heard.Store(time.Now().UnixNano())
	return sess
}

// receive reads the session's PubSub until the session ends. It is the
// only goroutine that calls the watchers of the session's rooms while the
// session lasts.
func (s *Store) receive(sess *session) {
	defer close(sess.done)
	behind := make(map[*room]struct{}) // rooms whose catch-up failed
	var wait time.Duration
	for {
		v, err := sess.ps.Receive(s.ctx)
		if err != nil {
			// go-redis has already dropped the connection, and redials on
			// the next Receive; back off while Redis is away.
			s.reload()
			if s.cluster != nil {
				// Never go-redis's reconnect here: it would resubscribe
				// every channel in one SSUBSCRIBE, which Redis refuses
				// when they span slots. run starts over, on the masters
				// the slot map names by then.
				if s.ctx.Err() == nil {
					s.opts.Logger.LogAttrs(s.ctx, slog.LevelInfo, "redis fan-out: connection to a master lost; subscribing again",
						slog.String("addr", sess.addr), slog.Any("err", err))
				}
				s.quitSession(sess, retryDelay)
				return
			}
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
			switch v.Kind {
			case "subscribe", "ssubscribe":
				if r := s.owned(sess, v.Channel); r != nil {
					s.catchUp(r, behind)
				}
			case "sunsubscribe":
				if !s.confirmed(sess, v.Channel) {
					// Not ours: the channel's slot moved to another master.
					s.opts.Logger.LogAttrs(s.ctx, slog.LevelInfo, "redis fan-out: a slot moved; subscribing again",
						slog.String("addr", sess.addr), slog.String("channel", v.Channel))
					s.reload()
					s.quitSession(sess, 0)
					return
				}
			}
		case *goredis.Message:
			s.live(sess, v, behind)
		case *goredis.Pong:
			for r := range behind {
				if s.owned(sess, r.channel) != r {
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

// quitSession tells run, after wait, that sess is broken; run ends it.
func (s *Store) quitSession(sess *session, wait time.Duration) {
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-sess.quit:
			return
		}
	}
	select {
	case s.broken <- sess:
	case <-sess.quit:
	}
}

// confirmed reports whether a SUNSUBSCRIBE of ch on sess was one run sent.
func (s *Store) confirmed(sess *session, ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.unsubs[ch] == 0 {
		return false
	}
	if sess.unsubs[ch]--; sess.unsubs[ch] == 0 {
		delete(sess.unsubs, ch)
	}
	return true
}

// owned returns the watched room whose channel is ch when it is subscribed
// on sess, or nil.
func (s *Store) owned(sess *session, ch string) *room {
	r := s.watched(ch)
	if r == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.sess != sess {
		return nil // moved to another session; that one's receiver has it
	}
	return r
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
	// Deletes is a deletion record's (deleteScript); absent on messages.
	Deletes int64 `json:"deletes,omitempty"`
}

// live handles a message from the channel.
func (s *Store) live(sess *session, msg *goredis.Message, behind map[*room]struct{}) {
	r := s.owned(sess, msg.Channel)
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
	if lm.Deletes < 0 {
		return chat.Message{}, fmt.Errorf("seq %d: bad deletes %d", lm.Seq, lm.Deletes)
	}
	return chat.Message{Room: name, Seq: lm.Seq, Epoch: lm.Epoch, Author: lm.Author, AuthorKey: lm.Key, Text: lm.Text, Time: t, Deletes: lm.Deletes}, nil
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
		var bad int64                     // the newest entry skipped as unreadable
		snap, msgs, err := s.query(s.ctx, r.name, query{kind: sinceQuery, after: after, n: fillBatch},
			func(p goredis.Pipeliner) { top = p.XRevRangeN(s.ctx, s.keys(r.name).log, "+", "-", 1) },
			func(id string, err error) {
				// Nothing will make it readable: skip it rather than stall.
				s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis fan-out: skipping a bad stream entry",
					slog.String("room", r.name), slog.String("id", id), slog.Any("err", err))
				if seq, perr := entrySeq(id); perr == nil {
					bad = max(bad, seq)
				}
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
		// Entries, and placeholders for the deleted messages among them
		// (an XDEL hole is not a loss: see query).
		for _, m := range msgs {
			s.deliver(r, m)
		}
		r.last = max(r.last, bad)
		if len(snap.entries) == fillBatch && r.last > after {
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
