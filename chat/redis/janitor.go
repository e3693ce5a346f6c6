package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The janitor bounds what Redis keeps, in the background: one goroutine per
// Store, so every node sharing the Redis runs one, and any number of them
// are harmless together. No append waits for it. Every script it runs
// touches one slot of a Redis Cluster: one room's keys (one hash tag), one
// bucket of the rooms index, or the lease.
//
//	start, every SweepInterval ─▶ migrate, evict, then expire (with MaxAge)
//	an append of seq 1         ─▶ soon (sweepSoon): evict
//
// evict: the rooms are counted (the sum of the index buckets' ZCARDs).
// Beyond MaxRooms, the node takes the lease (leaseKey, SET NX PX leaseTTL;
// a node that finds it taken leaves the sweep to its holder) and reads each
// bucket's oldest, as many as the excess (at most sweepRooms); the oldest
// of them all are the candidates, oldest first. Before each removal it
// renews the lease and counts again, in one round trip, and stops when it
// lost the lease or the rooms are no longer beyond the bound. For each,
// evictScript deletes the room's keys unless its active key shows a post
// since the index said so (then the room stays), and zremIfScoresScript
// takes the member out of its bucket unless its score moved (the room was
// posted to again meanwhile). A crash between the two leaves a member
// without keys, which the next sweep removes.
//
// Why a lease: the count and the candidates span the buckets, so no script
// can read them at one moment as one sorted set allowed. Two nodes each
// removing "the excess" they counted would together remove it twice. With
// the lease one node removes at a time, and as only removals lower the
// count, each removal it makes is of a room beyond the bound when it
// counted: the rooms never drop below MaxRooms through the janitor, and
// a sweep removes exactly the excess (less any room posted to meanwhile,
// which stays). The recount before each removal is the guard for a
// holder that stalled past leaseTTL while another took over: it then
// stops at its next removal; only a stall of more than leaseTTL between
// the renewal and the removal right after it could remove one room too
// many. A room whose index entry lags (see rooms.go) is not counted: the
// bound may keep a room more, never fewer.
//
// migrate: the members of an index from before the buckets move into
// their buckets (migrateIndex, rooms.go).
//
// expire: a walk through the index buckets in turn (ZSCAN: every member
// present for the whole walk is visited), at most sweepRooms rooms and
// about sweepEntries stream entries per sweep; a sweep that stops at a
// bound is followed by the next one soon, and a finished walk starts over
// at the next interval. A room whose activity (its score) is older than
// MaxAge loses its stream (dropScript, unless its active key is younger:
// then its score, which lagged, is raised to it). Any other
// room whose oldest entry is older has its entries read up to the first
// younger one, and those before it removed (trimScript, unless the room's
// epoch changed: another history). Stream ids are seqs, not times, and
// entries are in time order but for the clocks of several nodes, so the
// walk goes by the entries' time fields. Both keep the room's counter and
// epoch: its seqs go on.

const (
	// sweepRooms bounds the rooms one sweep removes, and the rooms one
	// sweep's expiry walk looks at.
	sweepRooms = 1000
	// sweepEntries roughly bounds the stream entries one sweep's expiry
	// walk reads (it may read up to ageChunk more).
	sweepEntries = 20_000
	// ageChunk is how many entries one read of a room's oldest asks for.
	ageChunk = 500
	// scanCount is the COUNT hint of the expiry walk's ZSCAN, and about
	// how many rooms are looked at with one round trip.
	scanCount = 100
	// sweepSoon is how soon after a new room the janitor checks MaxRooms,
	// and how soon a sweep that stopped at a bound goes on (SweepInterval
	// if that is shorter). New rooms in a burst share one check.
	sweepSoon = 200 * time.Millisecond
)

// Stats counts what a Store's janitor removed since Open: this node's
// share, when several nodes share the Redis (add them up).
type Stats struct {
	// RoomsEvicted is how many rooms had their history removed to stay
	// within Options.MaxRooms.
	RoomsEvicted int64
	// Expired is how many messages were removed for being older than
	// Options.MaxAge (not those of evicted rooms).
	Expired int64
}

// Stats returns the janitor's counters. It is safe for concurrent use.
func (s *Store) Stats() Stats {
	return Stats{RoomsEvicted: s.evicted.Load(), Expired: s.expired.Load()}
}

// roomCreated tells the janitor that an append created a room; it never
// blocks.
func (s *Store) roomCreated() {
	select {
	case s.created <- struct{}{}:
	default:
	}
}

// janitor sweeps until Close; see the top of this file.
func (s *Store) janitor() {
	defer s.wg.Done()
	interval := s.opts.SweepInterval
	soon := min(sweepSoon, interval)
	var walk ageWalk
	tick := time.NewTimer(interval)
	defer tick.Stop()
	evict := time.NewTimer(soon)
	evict.Stop()
	defer evict.Stop()
	armed := false // evict is running
	s.sweepFailed("move the old rooms index into its buckets", s.migrateIndex(s.ctx))
	for {
		select {
		case <-s.done:
			return
		case <-s.created:
			if !armed {
				evict.Reset(soon)
				armed = true
			}
		case <-evict.C:
			armed = false
			more, err := s.evictExcess(s.ctx)
			s.sweepFailed("remove rooms beyond the bound", err)
			if more {
				evict.Reset(soon)
				armed = true
			}
		case <-tick.C:
			s.sweepFailed("move the old rooms index into its buckets", s.migrateIndex(s.ctx))
			more, err := s.evictExcess(s.ctx)
			s.sweepFailed("remove rooms beyond the bound", err)
			if s.opts.MaxAge > 0 {
				old, err := s.expireOld(s.ctx, &walk)
				s.sweepFailed("remove old messages", err)
				more = more || old
			}
			if more {
				tick.Reset(soon)
			} else {
				tick.Reset(interval)
			}
		}
	}
}

// sweepFailed logs a sweep's error; the next sweep tries again.
func (s *Store) sweepFailed(what string, err error) {
	if err == nil || s.ctx.Err() != nil {
		return
	}
	s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn, "redis janitor: cannot "+what+"; will retry", slog.Any("err", err))
}

// evictScript removes a room's keys unless its activity is later than
// ARGV[1] (the room's score in the index when the janitor read it): a room
// posted to since, or whose score lags its activity (Append's throttle,
// see indexEvery), is kept. A room without an active key (written before
// there was one) has no later activity. It returns {1, 0} when it removed
// keys, {0, 0} when there were none (another node was first), {-1,
// activity} when the room is kept.
//
// KEYS: activity, seq counter, epoch, stream, deleted set. ARGV: the
// room's score.
var evictScript = goredis.NewScript(`
local active = redis.call('GET', KEYS[1])
if active and tonumber(active) > tonumber(ARGV[1]) then return {-1, tonumber(active)} end
if redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]) > 0 then return {1, 0} end
return {0, 0}
`)

// raiseScore raises room's score in its index bucket to active (Unix ms),
// unless it is that high already (moveMaxScript: ZADD GT is Redis 6.2):
// the janitor's step for a room it kept because its score lagged, so that
// the room is not among the oldest again at every sweep, holding up the
// bound. Were the member gone meanwhile, it is added: the room has keys.
func (s *Store) raiseScore(ctx context.Context, room string, active int64) error {
	return moveMaxScript.Run(ctx, s.client, []string{s.roomsKeyOf(room)}, room, active).Err()
}

// keptReply reads evictScript's and dropScript's {n, activity}.
func keptReply(cmd *goredis.Cmd) (n, active int64, err error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("unexpected reply %v", v)
	}
	return v[0], v[1], nil
}

// leaseRenewScript extends the lease KEYS[1] by ARGV[2] ms if it still
// holds the token ARGV[1]; it returns 1 if it did. With ARGV[2] = 0 it
// deletes the lease instead (a release).
var leaseRenewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`)

// The scripts delete with UNLINK: a stream of Retention entries is freed
// in the background instead of holding up Redis.

// keepCounter (Lua) makes sure the seq counter KEYS[3] exists before the
// stream KEYS[2], not empty, is deleted, so that the room's seqs go on.
const keepCounter = `
if not redis.call('GET', KEYS[3]) then
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  redis.call('SET', KEYS[3], string.match(top[1][1], '^%d+'))
end
`

// dropScript deletes a room's stream, keeping its counter and epoch, unless
// its activity is not older than the cutoff ARGV[1] (Unix ms): the
// activity is at least the time of its newest message, so all of them are
// older. The index's score, which picked the room, may lag the activity
// (posted to since, or Append's throttle). A room without an active key
// (written before there was one) goes by its score. It returns {how many
// entries it deleted, 0}, or {-1, activity} when the room is kept. The
// deleted set (see delete.go) goes with the stream.
//
// KEYS: activity, stream, seq counter, deleted set. ARGV: the cutoff.
var dropScript = goredis.NewScript(`
local active = redis.call('GET', KEYS[1])
if active and tonumber(active) >= tonumber(ARGV[1]) then return {-1, tonumber(active)} end
local n = redis.call('XLEN', KEYS[2])
if n == 0 then
  redis.call('UNLINK', KEYS[4])
  return {0, 0}
end
` + keepCounter + `
redis.call('UNLINK', KEYS[2], KEYS[4])
return {n, 0}
`)

// trimScript removes the entries of a stream up to the id ARGV[2], which
// the caller read (at most ARGV[3] of them), unless the room's epoch is no
// longer ARGV[1] ("" for none): then the stream is another history's. It
// counts them and trims that many from the front (XTRIM MAXLEN: Redis 5
// has no MINID), or deletes the stream, keeping the counter, when that is
// all of it. It returns how many it removed, or -1 for another epoch.
// The deleted messages (see delete.go) up to that id go too (all of them
// with the stream); a deleted one between it and the first entry left
// stays until a later trim passes it: its time is not read.
//
// KEYS: epoch, stream, seq counter, deleted set. ARGV: the epoch read, the
// newest id to remove, how many entries the caller read up to it.
var trimScript = goredis.NewScript(`
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
local n = #redis.call('XRANGE', KEYS[2], '-', ARGV[2], 'COUNT', ARGV[3])
if n == 0 then return 0 end
local len = redis.call('XLEN', KEYS[2])
if n < len then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', len - n)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.match(ARGV[2], '^%d+'))
  return n
end
` + keepCounter + `
redis.call('UNLINK', KEYS[2], KEYS[4])
return n
`)

// leaseTTL is how long the janitor's lease lasts unless renewed: the
// longest a crashed node holds up the other nodes' evictions. It is
// renewed before every removal, so it only has to outlast one removal.
const leaseTTL = 10 * time.Second

func (s *Store) leaseKey() string { return s.opts.KeyPrefix + "janitor:lease" }

// evictExcess removes the least recently active rooms beyond MaxRooms, at
// most sweepRooms of them; more reports that rooms beyond the bound are
// left for the next sweep. Only the node holding the lease removes rooms:
// another node's call returns at once (the holder finds any new excess
// before it lets go, and the next sweep after it).
func (s *Store) evictExcess(ctx context.Context) (more bool, err error) {
	// Most sweeps find nothing to do: they leave the lease alone.
	if _, over, err := s.count(ctx, s.opts.MaxRooms); err != nil || !over {
		return false, err
	}
	token := hexID()
	ok, err := s.client.SetNX(ctx, s.leaseKey(), token, leaseTTL).Result()
	if err != nil || !ok {
		return false, err
	}
	defer func() {
		// Let go at once rather than after leaseTTL; a failure only
		// makes the others wait for the expiry.
		_ = leaseRenewScript.Run(context.WithoutCancel(ctx), s.client, []string{s.leaseKey()}, token, 0).Err()
	}()
	zs, more, err := s.excess(ctx, s.opts.MaxRooms)
	if err != nil || len(zs) == 0 {
		return false, err
	}
	goOn := func(ctx context.Context) (bool, error) { return s.stillOver(ctx, token) }
	removed, raised, err := s.evictRooms(ctx, zs, goOn)
	if err != nil {
		return false, err
	}
	if !more && (removed > 0 || raised > 0) {
		// Rooms created during the sweep, on any node, and rooms posted
		// to meanwhile (kept, their scores raised): the next oldest go
		// soon. (Not when nothing changed: that would only spin.)
		_, more, err = s.count(ctx, s.opts.MaxRooms)
	}
	return more, err
}

// count returns how many rooms the index holds (the sum of its buckets),
// and whether that is more than keep.
func (s *Store) count(ctx context.Context, keep int) (n int64, over bool, err error) {
	cards := make([]*goredis.IntCmd, indexBuckets)
	if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range cards {
			cards[b] = p.ZCard(ctx, s.roomsKey(b))
		}
		return nil
	}); err != nil {
		return 0, false, err
	}
	for _, c := range cards {
		n += c.Val()
	}
	return n, n > int64(keep), nil
}

// stillOver renews the lease of token and counts the rooms again (one
// round trip): it reports whether this node may remove one more room.
func (s *Store) stillOver(ctx context.Context, token string) (bool, error) {
	var renew *goredis.Cmd
	cards := make([]*goredis.IntCmd, indexBuckets)
	if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		renew = leaseRenewScript.EvalSha(ctx, p, []string{s.leaseKey()}, token, leaseTTL.Milliseconds())
		for b := range cards {
			cards[b] = p.ZCard(ctx, s.roomsKey(b))
		}
		return nil
	}); err != nil && !goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return false, err
	}
	if goredis.HasErrorPrefix(renew.Err(), "NOSCRIPT") {
		// Flushed scripts: run it again, by EVAL, then the counts.
		if err := leaseRenewScript.Run(ctx, s.client, []string{s.leaseKey()}, token, leaseTTL.Milliseconds()).Err(); err != nil {
			return false, err
		}
		return s.stillOver(ctx, token)
	}
	if n, err := renew.Int64(); err != nil || n != 1 {
		return false, err // lost the lease: another node sweeps now
	}
	var n int64
	for _, c := range cards {
		n += c.Val()
	}
	return n > int64(s.opts.MaxRooms), nil
}

// excess returns the oldest rooms of the index beyond keep, at most
// sweepRooms of them, with their scores: each bucket's oldest, the oldest
// of them all; more reports that there are others.
func (s *Store) excess(ctx context.Context, keep int) (zs []goredis.Z, more bool, err error) {
	n, over, err := s.count(ctx, keep)
	if err != nil || !over {
		return nil, false, err
	}
	want := min(n-int64(keep), sweepRooms)
	ranges := make([]*goredis.ZSliceCmd, indexBuckets)
	if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range ranges {
			ranges[b] = p.ZRangeWithScores(ctx, s.roomsKey(b), 0, want-1)
		}
		return nil
	}); err != nil {
		return nil, false, err
	}
	for _, r := range ranges {
		zs = append(zs, r.Val()...)
	}
	zs = oldest(zs, int(want))
	return zs, n-int64(keep) > int64(len(zs)), nil
}

// evictRooms removes the rooms zs (members of the index with the scores
// the janitor read), but those posted to since, in order, and returns how
// many members it removed from the index, and how many kept rooms' scores
// it raised to their activity (their score lagged it: posted to since,
// or Append's throttle). Before each it asks goOn, when not nil, and
// stops when that says no.
func (s *Store) evictRooms(ctx context.Context, zs []goredis.Z, goOn func(context.Context) (bool, error)) (removed, raised int, err error) {
	for _, z := range zs {
		if goOn != nil {
			if ok, err := goOn(ctx); err != nil || !ok {
				return removed, raised, err
			}
		}
		name := z.Member.(string)
		score := formatScore(z.Score)
		k := s.keys(name)
		n, active, err := keptReply(evictScript.Run(ctx, s.client, []string{k.active, k.seq, k.epoch, k.log, k.deleted}, score))
		if n == 1 {
			s.evicted.Add(1)
		}
		switch {
		case err != nil:
		case n >= 0:
			var gone int64
			gone, err = zremIfScoresScript.Run(ctx, s.client, []string{s.roomsKeyOf(name)}, name, score).Int64()
			removed += int(gone)
		case float64(active) > z.Score:
			if err = s.raiseScore(ctx, name, active); err == nil {
				raised++
			}
		}
		if err != nil {
			if !isPermanent(err) {
				return removed, raised, fmt.Errorf("remove room %q: %w", name, err)
			}
			// Nothing will change it (a key of the wrong type): go on
			// with the others rather than stall on this one.
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redis janitor: cannot remove a room; skipping it",
				slog.String("room", name), slog.Any("err", err))
		}
	}
	return removed, raised, nil
}

// ageWalk is where the expiry walk through the rooms index stands; it is
// the janitor goroutine's own.
type ageWalk struct {
	bucket  int         // the bucket being scanned
	cursor  uint64      // ZSCAN's, in bucket
	started bool        // a walk is under way
	pending []goredis.Z // scanned and not yet looked at
}

// expireOld goes on with the expiry walk for one sweep: see the top of this
// file. more reports that the sweep stopped at a bound before the walk's
// end. After an error the walk goes on from the same room next time.
func (s *Store) expireOld(ctx context.Context, w *ageWalk) (more bool, err error) {
	cutoff := time.Now().Add(-s.opts.MaxAge)
	rooms, entries := 0, 0
	for {
		if len(w.pending) == 0 {
			if w.started && w.cursor == 0 {
				// Done with this bucket.
				w.started = false
				if w.bucket++; w.bucket == indexBuckets {
					w.bucket = 0
					return false, nil
				}
			}
			zs, next, err := s.scanIndex(ctx, w.bucket, w.cursor)
			if err != nil {
				return false, err
			}
			w.started, w.cursor, w.pending = true, next, zs
			continue
		}
		if rooms >= sweepRooms || entries >= sweepEntries {
			return true, nil
		}
		batch := w.pending[:min(len(w.pending), scanCount, sweepRooms-rooms)]
		done, read, err := s.expireRooms(ctx, batch, cutoff, sweepEntries-entries)
		w.pending = w.pending[done:]
		rooms += done
		entries += read
		if err != nil {
			return false, err
		}
		if done < len(batch) {
			return true, nil // out of entries
		}
	}
}

// scanIndex reads the next members of index bucket b from cursor.
func (s *Store) scanIndex(ctx context.Context, b int, cursor uint64) ([]goredis.Z, uint64, error) {
	kv, next, err := s.client.ZScan(ctx, s.roomsKey(b), cursor, "", scanCount).Result()
	if err != nil {
		return nil, 0, err
	}
	if len(kv)%2 != 0 {
		return nil, 0, fmt.Errorf("ZSCAN returned %d values, want pairs", len(kv))
	}
	zs := make([]goredis.Z, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		z, err := parseZ(kv[i], kv[i+1])
		if err != nil {
			return nil, 0, err
		}
		zs = append(zs, z)
	}
	return zs, next, nil
}

// expireRooms removes the messages older than cutoff from the rooms of
// batch, reading at most about budget entries. It returns how many rooms
// it is done with (the first ones of batch) and how many entries it read.
func (s *Store) expireRooms(ctx context.Context, batch []goredis.Z, cutoff time.Time, budget int) (done, read int, err error) {
	cut := float64(cutoff.UnixMilli())
	// One round trip for the whole batch tells which rooms have anything
	// to remove: the common answer is none.
	type peek struct {
		exists *goredis.IntCmd           // rooms older than cutoff: has a stream
		epoch  *goredis.SliceCmd         // others: the epoch, then
		first  *goredis.XMessageSliceCmd // the oldest entry
	}
	peeks := make([]peek, len(batch))
	if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, z := range batch {
			k := s.keys(z.Member.(string))
			if z.Score < cut {
				peeks[i].exists = p.Exists(ctx, k.log)
			} else {
				peeks[i].epoch = p.MGet(ctx, k.epoch)
				peeks[i].first = p.XRangeN(ctx, k.log, "-", "+", 1)
			}
		}
		return nil
	}); err != nil && !isPermanent(err) {
		return 0, 0, err
	}
	for i, z := range batch {
		if read >= budget {
			return i, read, nil
		}
		name := z.Member.(string)
		k := s.keys(name)
		var err error
		switch pk := peeks[i]; {
		case pk.exists != nil:
			if err = pk.exists.Err(); err == nil && pk.exists.Val() > 0 {
				var n, active int64
				n, active, err = keptReply(dropScript.Run(ctx, s.client, []string{k.active, k.log, k.seq, k.deleted}, formatScore(cut)))
				s.expired.Add(max(n, 0))
				if err == nil && n < 0 && float64(active) > z.Score {
					// Kept: its score lagged (see evictRooms).
					err = s.raiseScore(ctx, name, active)
				}
			}
		default:
			if err = pk.first.Err(); err == nil {
				err = pk.epoch.Err()
			}
			xs := pk.first.Val()
			if err != nil || len(xs) == 0 {
				break
			}
			if m, derr := decodeEntry(name, xs[0]); derr == nil && !m.Time.Before(cutoff) {
				break // the oldest is young enough
			}
			epoch, _ := pk.epoch.Val()[0].(string)
			var n int
			var finished bool
			n, finished, err = s.trimOld(ctx, name, epoch, cutoff, budget-read)
			read += n
			if err == nil && !finished {
				return i, read, nil // out of entries: this room again next time
			}
		}
		if err != nil {
			if !isPermanent(err) {
				return i, read, fmt.Errorf("remove old messages of %q: %w", name, err)
			}
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redis janitor: cannot remove a room's old messages; skipping it",
				slog.String("room", name), slog.Any("err", err))
		}
	}
	return len(batch), read, nil
}

// trimOld removes the entries of room older than cutoff that come before
// its first younger one, the stream being of epoch. It reads at most about
// budget entries; finished reports that it got to a younger entry or the
// end of the stream (else the rest of the old ones are left for later).
func (s *Store) trimOld(ctx context.Context, room, epoch string, cutoff time.Time, budget int) (read int, finished bool, err error) {
	k := s.keys(room)
	from := "-"
	old := 0
	var last int64 // the seq of the newest old entry
	for !finished && read < budget {
		xs, err := s.client.XRangeN(ctx, k.log, from, "+", ageChunk).Result()
		if err != nil {
			return read, false, err
		}
		read += len(xs)
		for _, x := range xs {
			seq, err := entrySeq(x.ID)
			if err != nil {
				finished = true // not an entry of ours: leave it, and what follows
				break
			}
			if m, err := decodeEntry(room, x); err == nil && !m.Time.Before(cutoff) {
				finished = true
				break
			}
			// Older than cutoff, or a time nobody can read (then no read
			// of the room works either): it goes.
			old++
			last = seq
		}
		if len(xs) < ageChunk {
			finished = true
		}
		from = entryID(last + 1)
	}
	if old == 0 {
		return read, finished, nil
	}
	n, err := trimScript.Run(ctx, s.client, []string{k.epoch, k.log, k.seq, k.deleted}, epoch, entryID(last), old).Int64()
	s.expired.Add(max(n, 0))
	return read, finished, err
}

// parseZ makes a goredis.Z of a member and score replied as strings.
func parseZ(member, score any) (goredis.Z, error) {
	m, ok1 := member.(string)
	sc, ok2 := score.(string)
	if !ok1 || !ok2 {
		return goredis.Z{}, fmt.Errorf("bad sorted set entry %v %v", member, score)
	}
	f, err := strconv.ParseFloat(sc, 64)
	if err != nil {
		return goredis.Z{}, fmt.Errorf("bad score %q of %q", sc, m)
	}
	return goredis.Z{Member: m, Score: f}, nil
}

// formatScore writes a score as Redis reads it, exactly (scores are whole
// milliseconds).
func formatScore(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
