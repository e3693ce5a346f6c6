package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// Presence across nodes, with the default key prefix:
//
//	hxchat:presence:{NAME}  sorted set: one entry per node and person in room
//	                        NAME, the JSON array [node, key, name]; score:
//	                        when it expires (Unix ms, Redis's clock)
//	hxchat:presence-rooms:{b0} … hxchat:presence-rooms:{b15}
//	                        sorted sets, together the rooms with entries,
//	                        each in its bucket (bucketOf, as the rooms
//	                        index); score: the latest expiry among them
//	hxchat:dbN:presence     Pub/Sub channel: "NODE ROOM" when entries of ROOM
//	                        were added or removed
//
// Every script and MULTI touches one hash slot: syncScript only the room's
// set; the presence index is written after it, in the same round trip as
// the other rooms' scripts, one plain command per room. Every node writes
// every room it has members in every half heartbeat, so one index key
// would be hit by all of them; the buckets spread that over a cluster. The
// index may lag a room's set when two nodes' writes cross (a room's score
// too low, or the room missing) until the next write of the room, at most
// half a heartbeat: Occupied only uses it to find rooms to look at. The
// channel is not a key: it is sent on a change only (a join, a leave, an
// expiry), not every heartbeat, and a Redis Cluster carries a PUBLISH to
// every node whatever its name, so splitting it would not spread anything.
// It stays on plain PUBLISH/SUBSCRIBE on a cluster too, where the rooms'
// messages use sharded Pub/Sub (see cluster.go): a notice is rare and
// small, and every node wants every one.
//
// Each node keeps its own members in a chat.LocalPresence, which is the
// truth about them, and writes them to Redis: at once after a join or leave,
// and every half heartbeat with a new expiry of 1.5 heartbeats. A node that
// dies stops refreshing, so its entries expire within 1.5 heartbeats, and
// every node checks its watched rooms every half heartbeat: the people of a
// crashed node vanish everywhere within two heartbeats. Times come from
// Redis (TIME), so the nodes' clocks do not matter.

// DefaultPresenceHeartbeat is the default of Options.PresenceHeartbeat.
const DefaultPresenceHeartbeat = 15 * time.Second

// Presence is the chat.Presence of a Store: who is in which room, on every
// node sharing the Redis. Get it with Store.Presence; it ends with the Store.
type Presence struct {
	s       *Store
	local   *chat.LocalPresence
	node    string // this process's id, in its entries
	period  time.Duration
	ttl     time.Duration
	channel string

	start sync.Once
	quit  chan struct{}
	wg    sync.WaitGroup
	ps    *goredis.PubSub // set by start

	mu    sync.Mutex
	dirty map[string]struct{} // rooms whose local members changed
	wake  chan struct{}

	// written is what this node has in Redis, by room, and failing
	// whether the last write failed.
	written map[string][]string
	failing bool
	prune   int // the next index bucket pruned in turn; write's own
}

var _ chat.Presence = (*Presence)(nil)

func newPresence(s *Store, db int) *Presence {
	hb := s.opts.PresenceHeartbeat
	return &Presence{
		s:       s,
		local:   chat.NewLocalPresence(),
		node:    hexID(),
		period:  hb / 2,
		ttl:     hb * 3 / 2,
		channel: s.opts.KeyPrefix + "db" + strconv.Itoa(db) + ":presence",
		quit:    make(chan struct{}),
		dirty:   make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		written: make(map[string][]string),
	}
}

// Presence implements chat.PresenceKeeper.
func (s *Store) Presence() chat.Presence { return s.presence }

// hexID returns 8 random bytes in hex.
func hexID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (p *Presence) key(room string) string { return p.s.opts.KeyPrefix + "presence:{" + room + "}" }

// roomsKey is bucket b of the presence index.
func (p *Presence) roomsKey(b int) string {
	return p.s.opts.KeyPrefix + "presence-rooms:" + bucketTag(b)
}

// run starts the writer and the receiver of change notices, once, unless
// the store is closed.
func (p *Presence) run() {
	p.start.Do(func() {
		if p.s.closed.Load() {
			return
		}
		p.ps = p.s.client.Subscribe(context.Background())
		p.wg.Add(2)
		go p.write()
		go p.receive()
	})
}

// close removes this node's entries (best effort) and stops the goroutines.
// Store.Close calls it before closing the client.
func (p *Presence) close() {
	p.start.Do(func() {}) // no start after this
	close(p.quit)
	if p.ps != nil {
		_ = p.ps.Close()
	}
	p.wg.Wait()
}

// Join implements chat.Presence. The entry reaches Redis shortly after, and
// the other nodes are told.
func (p *Presence) Join(room string, m chat.Member) (leave func()) {
	p.run()
	l := p.local.Join(room, m)
	p.changed(room)
	var once sync.Once
	return func() {
		once.Do(func() {
			l()
			p.changed(room)
		})
	}
}

func (p *Presence) changed(room string) {
	p.mu.Lock()
	p.dirty[room] = struct{}{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// WatchMembers implements chat.Presence: fn is called on local joins and
// leaves, on notices from other nodes, and every half heartbeat, when
// entries may have expired.
func (p *Presence) WatchMembers(room string, fn func()) (stop func()) {
	p.run()
	return p.local.WatchMembers(room, fn)
}

// entry is one node's record of one member.
type entry struct {
	node, key, name string
	expires         float64
}

func encodeEntry(node string, m chat.Member) string {
	b, _ := json.Marshal([]string{node, m.Key, m.Name}) // strings always encode
	return string(b)
}

func decodeEntryZ(z goredis.Z) (entry, bool) {
	s, _ := z.Member.(string)
	var f []string
	if json.Unmarshal([]byte(s), &f) != nil || len(f) != 3 {
		return entry{}, false
	}
	return entry{node: f[0], key: f[1], name: f[2], expires: z.Score}, true
}

// Members implements chat.Presence: this node's members, and the unexpired
// entries of the other nodes.
func (p *Presence) Members(ctx context.Context, room string) ([]chat.Member, error) {
	const what = "presence members"
	if err := p.s.check(ctx, what); err != nil {
		return nil, err
	}
	pipe := p.s.client.Pipeline()
	now := pipe.Time(ctx)
	zs := pipe.ZRangeWithScores(ctx, p.key(room), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.s.fail(ctx, what, err)
	}
	local, err := p.local.Members(ctx, room)
	if err != nil {
		return nil, err
	}
	return p.merge(now.Val(), zs.Val(), local), nil
}

// merge returns the members of a room: local ones, and those of other
// nodes' entries unexpired at now, each key once.
func (p *Presence) merge(now time.Time, zs []goredis.Z, local []chat.Member) []chat.Member {
	nowMS := float64(now.UnixMilli())
	byKey := make(map[string]entry, len(zs)+len(local))
	for _, z := range zs {
		e, ok := decodeEntryZ(z)
		if !ok || e.expires <= nowMS || e.node == p.node {
			continue
		}
		if old, ok := byKey[e.key]; !ok || e.expires > old.expires {
			byKey[e.key] = e
		}
	}
	for _, m := range local {
		byKey[m.Key] = entry{key: m.Key, name: m.Name}
	}
	out := make([]chat.Member, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, chat.Member{Key: e.key, Name: e.name})
	}
	chat.SortMembers(out)
	return out
}

// Occupied implements chat.Presence. When more than limit rooms are
// occupied, it counts some limit of them plus as many again.
func (p *Presence) Occupied(ctx context.Context, limit int) ([]chat.Occupancy, error) {
	const what = "occupied rooms"
	if err := p.s.check(ctx, what); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	pipe := p.s.client.Pipeline()
	now := pipe.Time(ctx)
	idx := make([]*goredis.ZSliceCmd, indexBuckets)
	for b := range idx {
		idx[b] = pipe.ZRevRangeWithScores(ctx, p.roomsKey(b), 0, int64(2*limit-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.s.fail(ctx, what, err)
	}
	nowMS := float64(now.Val().UnixMilli())
	var zs []goredis.Z
	for _, c := range idx {
		zs = append(zs, c.Val()...)
	}
	rooms := make(map[string]struct{})
	for _, z := range newest(zs, 2*limit) {
		if name, _ := z.Member.(string); name != "" && z.Score > nowMS {
			rooms[name] = struct{}{}
		}
	}
	for _, name := range p.local.Rooms() {
		rooms[name] = struct{}{}
	}
	if len(rooms) == 0 {
		return nil, nil
	}
	pipe = p.s.client.Pipeline()
	sets := make(map[string]*goredis.ZSliceCmd, len(rooms))
	for name := range rooms {
		sets[name] = pipe.ZRangeWithScores(ctx, p.key(name), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.s.fail(ctx, what, err)
	}
	out := make([]chat.Occupancy, 0, len(rooms))
	for name, set := range sets {
		local, err := p.local.Members(ctx, name)
		if err != nil {
			return nil, err
		}
		if n := len(p.merge(now.Val(), set.Val(), local)); n > 0 {
			out = append(out, chat.Occupancy{Room: name, Online: n})
		}
	}
	chat.SortOccupancy(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// syncScript makes one node's entries of one room what they should be:
// it removes the ones given, adds or refreshes the others with a new
// expiry, drops every expired entry, keeps the set's own expiry in line,
// and publishes a notice when an entry came or went. It returns the
// latest expiry left in the set (0 when it is empty), for the presence
// index, and Redis's time (ms).
//
// KEYS: the room's set. ARGV: ttl (ms), channel, notice, number of
// removals, the removals, the entries to keep.
var syncScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = now + tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local changed = 0
for i = 5, 4 + n do changed = changed + redis.call('ZREM', KEYS[1], ARGV[i]) end
for i = 5 + n, #ARGV do changed = changed + redis.call('ZADD', KEYS[1], exp, ARGV[i]) end
changed = changed + redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local latest = 0
if top[1] then
  latest = tonumber(top[2])
  redis.call('PEXPIREAT', KEYS[1], top[2])
end
if changed > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return {latest, now}
`)

// write keeps this node's entries in Redis: the changed rooms at once, all
// of them every half heartbeat; then it tells the watchers of every room to
// look again, as entries of other nodes may have expired.
func (p *Presence) write() {
	defer p.wg.Done()
	tick := time.NewTicker(p.period)
	defer tick.Stop()
	for {
		select {
		case <-p.quit:
			p.removeAll()
			return
		case <-p.wake:
			p.mu.Lock()
			rooms := make([]string, 0, len(p.dirty))
			for room := range p.dirty {
				rooms = append(rooms, room)
			}
			clear(p.dirty)
			p.mu.Unlock()
			p.sync(rooms, false)
		case <-tick.C:
			rooms := p.local.Rooms()
			for room := range p.written {
				rooms = append(rooms, room)
			}
			p.sync(rooms, false)
			for _, room := range p.local.Watched() {
				p.local.Notify(room)
			}
		}
	}
}

// removeAll takes this node's entries out of Redis as it shuts down.
func (p *Presence) removeAll() {
	rooms := make([]string, 0, len(p.written))
	for room := range p.written {
		rooms = append(rooms, room)
	}
	p.sync(rooms, true)
}

// sync writes this node's entries of rooms (none when gone is set). A room
// that fails is left as it is in written, so the next tick tries again.
func (p *Presence) sync(rooms []string, gone bool) {
	if len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.s.opts.DialTimeout+p.s.opts.WriteTimeout+p.s.opts.ReadTimeout)
	defer cancel()
	type job struct {
		room string
		want []string
		args []any
	}
	seen := make(map[string]bool, len(rooms))
	jobs := make([]job, 0, len(rooms))
	for _, room := range rooms {
		if seen[room] {
			continue
		}
		seen[room] = true
		var want []string
		if !gone {
			ms, _ := p.local.Members(ctx, room)
			for _, m := range ms {
				want = append(want, encodeEntry(p.node, m))
			}
		}
		keep := make(map[string]bool, len(want))
		for _, e := range want {
			keep[e] = true
		}
		var removals []string
		for _, e := range p.written[room] {
			if !keep[e] {
				removals = append(removals, e)
			}
		}
		if len(want) == 0 && len(removals) == 0 && p.written[room] == nil {
			continue
		}
		args := []any{p.ttl.Milliseconds(), p.channel, p.node + " " + room, len(removals)}
		for _, e := range removals {
			args = append(args, e)
		}
		for _, e := range want {
			args = append(args, e)
		}
		jobs = append(jobs, job{room: room, want: want, args: args})
	}
	if len(jobs) == 0 {
		return
	}
	run := func() ([]*goredis.Cmd, error) {
		pipe := p.s.client.Pipeline()
		cmds := make([]*goredis.Cmd, len(jobs))
		for i, j := range jobs {
			cmds[i] = syncScript.EvalSha(ctx, pipe, []string{p.key(j.room)}, j.args...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = syncScript.Load(ctx, p.s.client).Err(); err == nil {
			cmds, err = run()
		}
	}
	index := p.s.client.Pipeline()
	var now int64
	for i, j := range jobs {
		res, err := cmds[i].Int64Slice()
		if err != nil || len(res) != 2 {
			continue
		}
		if len(j.want) == 0 {
			delete(p.written, j.room)
		} else {
			p.written[j.room] = j.want
		}
		if latest := res[0]; latest > 0 {
			index.ZAdd(ctx, p.roomsKey(bucketOf(j.room)), goredis.Z{Score: float64(latest), Member: j.room})
		} else {
			index.ZRem(ctx, p.roomsKey(bucketOf(j.room)), j.room)
		}
		now = max(now, res[1])
	}
	if now > 0 {
		// Rooms whose entries all expired unwritten (their nodes died):
		// pruned from the buckets written, and from one more in turn, as
		// a dead node's rooms may be in a bucket nobody writes.
		prune := map[int]bool{p.prune: true}
		p.prune = (p.prune + 1) % indexBuckets
		for _, j := range jobs {
			prune[bucketOf(j.room)] = true
		}
		for b := range prune {
			index.ZRemRangeByScore(ctx, p.roomsKey(b), "-inf", strconv.FormatInt(now, 10))
		}
		if _, ierr := index.Exec(ctx); ierr != nil && err == nil {
			err = ierr
		}
	}
	switch {
	case gone:
	case err != nil && !p.failing:
		// Once per outage: the ticks retry every half heartbeat.
		p.failing = true
		p.s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redis presence: cannot write; will retry",
			slog.Int("rooms", len(jobs)), slog.Any("err", err))
	case err == nil && p.failing:
		p.failing = false
		p.s.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "redis presence: writing again", slog.Int("rooms", len(jobs)))
	}
}

// receive passes the other nodes' notices on to the watchers of the room.
// After a lost connection it tells every watcher to look again: notices may
// have been missed meanwhile.
func (p *Presence) receive() {
	defer p.wg.Done()
	ctx := context.Background()
	// On failure go-redis subscribes when it reconnects.
	_ = p.ps.Subscribe(ctx, p.channel)
	var wait time.Duration
	for {
		v, err := p.ps.Receive(ctx)
		if err != nil {
			p.s.reload()
			if !backoff(&wait, p.quit) {
				return
			}
			continue
		}
		wait = 0
		switch v := v.(type) {
		case *goredis.Subscription:
			for _, room := range p.local.Watched() {
				p.local.Notify(room)
			}
		case *goredis.Message:
			node, room, ok := strings.Cut(v.Payload, " ")
			if ok && node != p.node {
				p.local.Notify(room)
			}
		}
	}
}
