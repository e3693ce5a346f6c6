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
// are harmless together, because every removal is a compare-and-delete in
// one script. No append waits for it.
//
//	every SweepInterval  ─▶ evict, then expire (with MaxAge)
//	an append of seq 1   ─▶ soon (sweepSoon): evict
//
// evict: beyond MaxRooms rooms in the index, the oldest (lowest scores, read
// together with the count by excessScript) are removed, at most sweepRooms
// per sweep. For each, evictScript deletes the room's keys unless its
// active key shows a post since the index said so (then the room stays),
// and zremIfScoreScript takes the member out of the index unless its score
// moved (the room was posted to again meanwhile). Every script touches one
// slot of a Redis Cluster: one room's keys (one hash tag), or the index.
// Nodes that pick the same rooms delete each once (the later ones find
// nothing), and each picks only the oldest rooms beyond the bound as they
// are at that moment, so between them they remove exactly the excess. A
// crash between the two scripts leaves a member without keys, which the
// next sweep removes.
//
// expire: a walk through the index (ZSCAN: every member present for the
// whole walk is visited), at most sweepRooms rooms and about sweepEntries
// stream entries per sweep; a sweep that stops at a bound is followed by
// the next one soon, and a finished walk starts over at the next interval.
// A room whose activity (its score) is older than MaxAge loses its stream
// (dropScript, unless posted to since). Any other room whose oldest entry
// is older has its entries read up to the first younger one, and those
// before it removed (trimScript, unless the room's epoch changed: another
// history). Stream ids are seqs, not times, and entries are in time order
// but for the clocks of several nodes, so the walk goes by the entries'
// time fields. Both keep the room's counter and epoch: its seqs go on.

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

// excessScript returns how many rooms the index holds beyond ARGV[1], and
// the oldest of them, at most ARGV[2], with their scores: count and rooms
// read at one moment, so that nodes sweeping together never take a room
// for excess that another node's removals made one of the rooms kept.
//
// KEYS: rooms index. ARGV: rooms kept, rooms returned at most.
var excessScript = goredis.NewScript(`
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if over <= 0 then return {over, {}} end
return {over, redis.call('ZRANGE', KEYS[1], 0, math.min(over, tonumber(ARGV[2])) - 1, 'WITHSCORES')}
`)

// evictScript removes a room's keys unless its activity is later than
// ARGV[1] (the room's score in the index when the janitor read it): a room
// posted to since is kept. A room without an active key (written before
// there was one) has no later activity. It returns 1 when it removed keys,
// 0 when there were none (another node was first), -1 when the room was
// posted to.
//
// KEYS: activity, seq counter, epoch, stream. ARGV: the room's score.
var evictScript = goredis.NewScript(`
local active = redis.call('GET', KEYS[1])
if active and tonumber(active) > tonumber(ARGV[1]) then return -1 end
if redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0 then return 1 end
return 0
`)

// zremIfScoreScript removes member ARGV[1] from the sorted set KEYS[1] if
// its score is still ARGV[2]; it returns 1 if it did.
var zremIfScoreScript = goredis.NewScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
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
// its activity is later than ARGV[1] (as evictScript). It returns how many
// entries it deleted, or -1 when the room was posted to.
//
// KEYS: activity, stream, seq counter. ARGV: the room's score.
var dropScript = goredis.NewScript(`
local active = redis.call('GET', KEYS[1])
if active and tonumber(active) > tonumber(ARGV[1]) then return -1 end
local n = redis.call('XLEN', KEYS[2])
if n == 0 then return 0 end
` + keepCounter + `
redis.call('UNLINK', KEYS[2])
return n
`)

// trimScript removes the entries of a stream up to the id ARGV[2], which
// the caller read (at most ARGV[3] of them), unless the room's epoch is no
// longer ARGV[1] ("" for none): then the stream is another history's. It
// counts them and trims that many from the front (XTRIM MAXLEN: Redis 5
// has no MINID), or deletes the stream, keeping the counter, when that is
// all of it. It returns how many it removed, or -1 for another epoch.
//
// KEYS: epoch, stream, seq counter. ARGV: the epoch read, the newest id to
// remove, how many entries the caller read up to it.
var trimScript = goredis.NewScript(`
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
local n = #redis.call('XRANGE', KEYS[2], '-', ARGV[2], 'COUNT', ARGV[3])
if n == 0 then return 0 end
local len = redis.call('XLEN', KEYS[2])
if n < len then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', len - n)
  return n
end
` + keepCounter + `
redis.call('UNLINK', KEYS[2])
return n
`)

// evictExcess removes the least recently active rooms beyond MaxRooms, at
// most sweepRooms of them; more reports that rooms beyond the bound are
// left for the next sweep.
func (s *Store) evictExcess(ctx context.Context) (more bool, err error) {
	zs, more, err := s.excess(ctx, s.opts.MaxRooms)
	if err != nil || len(zs) == 0 {
		return false, err
	}
	return more, s.evictRooms(ctx, zs)
}

// excess returns the oldest rooms of the index beyond keep, at most
// sweepRooms of them, with their scores; more reports that there are
// others.
func (s *Store) excess(ctx context.Context, keep int) (zs []goredis.Z, more bool, err error) {
	res, err := excessScript.Run(ctx, s.client, []string{s.roomsKey()}, keep, sweepRooms).Slice()
	if err != nil {
		return nil, false, err
	}
	var (
		over     int64
		list     []any
		ok1, ok2 bool
	)
	if len(res) == 2 {
		over, ok1 = res[0].(int64)
		list, ok2 = res[1].([]any)
	}
	if !ok1 || !ok2 || len(list)%2 != 0 {
		return nil, false, fmt.Errorf("unexpected reply %v from the excess script", res)
	}
	for i := 0; i < len(list); i += 2 {
		z, err := parseZ(list[i], list[i+1])
		if err != nil {
			return nil, false, err
		}
		zs = append(zs, z)
	}
	return zs, over > int64(len(zs)), nil
}

// evictRooms removes the rooms zs (members of the index with the scores
// the janitor read), but those posted to since.
func (s *Store) evictRooms(ctx context.Context, zs []goredis.Z) error {
	for _, z := range zs {
		name := z.Member.(string)
		score := formatScore(z.Score)
		k := s.keys(name)
		n, err := evictScript.Run(ctx, s.client, []string{k.active, k.seq, k.epoch, k.log}, score).Int64()
		if n == 1 {
			s.evicted.Add(1)
		}
		if err == nil && n >= 0 {
			err = zremIfScoreScript.Run(ctx, s.client, []string{s.roomsKey()}, name, score).Err()
		}
		if err != nil {
			if !isPermanent(err) {
				return fmt.Errorf("remove room %q: %w", name, err)
			}
			// Nothing will change it (a key of the wrong type): go on
			// with the others rather than stall on this one.
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redis janitor: cannot remove a room; skipping it",
				slog.String("room", name), slog.Any("err", err))
		}
	}
	return nil
}

// ageWalk is where the expiry walk through the rooms index stands; it is
// the janitor goroutine's own.
type ageWalk struct {
	cursor  uint64      // ZSCAN's
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
				w.started = false
				return false, nil
			}
			zs, next, err := s.scanIndex(ctx, w.cursor)
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

// scanIndex reads the next members of the rooms index from cursor.
func (s *Store) scanIndex(ctx context.Context, cursor uint64) ([]goredis.Z, uint64, error) {
	kv, next, err := s.client.ZScan(ctx, s.roomsKey(), cursor, "", scanCount).Result()
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
				var n int64
				n, err = dropScript.Run(ctx, s.client, []string{k.active, k.log, k.seq}, formatScore(z.Score)).Int64()
				s.expired.Add(max(n, 0))
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
	n, err := trimScript.Run(ctx, s.client, []string{k.epoch, k.log, k.seq}, epoch, entryID(last), old).Int64()
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
