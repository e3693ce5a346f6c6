package redis

import (
	"cmp"
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// The rooms index, with the default key prefix:
//
//	hxchat:rooms:{b0} … hxchat:rooms:{b15}
//	        sorted sets, together every room with keys, each room in the
//	        bucket bucketOf(NAME); score: the room's last activity (Unix
//	        ms), as in its active key: the time of its newest message, or a
//	        little later (see appendScript and indexScript)
//
// The score may lag the active key: Append updates it at most once per
// indexEvery per room (store.go); the janitor raises the score of a room
// it keeps for that (janitor.go).
//
// Each bucket has a hash tag of its own, so on a Redis Cluster the buckets
// spread over the slots (and masters), and no key is written by every
// post. Append updates the room's bucket right after the append script,
// in the same round trip, with a script of its own (the append script
// keeps to the room's slot): a crash between the two leaves the room out
// of the index, or with an older score, until its next append. That
// affects only the list of active rooms and the janitor's bound (which
// counts the index, so it may keep a room too many, never one too few);
// seqs and epochs do not depend on the index. The index holds every other
// room, so the janitor (janitor.go) sees them; it is bounded because the
// rooms are: the janitor removes a room's member with the room.
//
// Deployments from before the buckets had one sorted set, hxchat:rooms;
// the janitor moves its members into their buckets (migrateIndex), and
// deletes the unsharded presence index, hxchat:presence-rooms.

var (
	_ chat.RoomLister     = (*Store)(nil)
	_ chat.PresenceKeeper = (*Store)(nil)
)

// indexBuckets is how many sorted sets the rooms index (and the presence
// index) is split into. Changing it moves rooms between buckets: it is
// part of the layout.
const indexBuckets = 16

// bucketOf is the bucket of room name: FNV-1a (32 bits) of the name,
// modulo indexBuckets; it never changes.
func bucketOf(room string) int {
	h := fnv.New32a()
	h.Write([]byte(room))
	return int(h.Sum32() % indexBuckets)
}

// bucketTag is the hash tag of bucket b: "{b7}".
func bucketTag(b int) string { return "{b" + strconv.Itoa(b) + "}" }

// roomsKey is the index bucket b.
func (s *Store) roomsKey(b int) string { return s.opts.KeyPrefix + "rooms:" + bucketTag(b) }

// roomsKeyOf is the index bucket that holds room.
func (s *Store) roomsKeyOf(room string) string { return s.roomsKey(bucketOf(room)) }

// oldRoomsKey is the unsharded index of deployments before the buckets.
func (s *Store) oldRoomsKey() string { return s.opts.KeyPrefix + "rooms" }

// indexScript sets room ARGV[2]'s score in the index bucket KEYS[1] to
// the time ARGV[1] (Unix ms) of a message appended to it, or to 1 ms past
// its score when that is not lower: the same rule as appendScript's for
// the room's active key, from the same previous value, so the two agree
// (but after a crash between the two, or when two appends' updates
// cross: then the score may be off by some ms, which the next append
// mends). Append sends it right after appendScript, in the same round
// trip, at most once per indexEvery per room and Store (the appends in
// between send the append script alone; an append of seq 1 sends it
// after, with the activity the script returned), whether or not that
// succeeds: a failed append may still move its
// room's score (a room that had no messages is then listed without any,
// until the janitor's bound removes it). The rule also covers a room the
// janitor is removing (keys gone, member not yet) posted to again: its
// new time may not be above the score the janitor read, and the member
// must not keep that score, which the janitor would remove. It returns
// the score set.
var indexScript = goredis.NewScript(`
local active = tonumber(ARGV[1])
local prev = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[2]))
if prev and active <= prev then active = prev + 1 end
redis.call('ZADD', KEYS[1], string.format('%d', active), ARGV[2])
return active
`)

// Rooms implements chat.RoomLister: the newest limit of every bucket,
// merged.
func (s *Store) Rooms(ctx context.Context, since time.Time, limit int) ([]chat.RoomInfo, error) {
	const what = "rooms"
	if err := s.check(ctx, what); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	by := &goredis.ZRangeBy{Max: "+inf", Min: strconv.FormatInt(since.UnixMilli(), 10), Count: int64(limit)}
	cmds := make([]*goredis.ZSliceCmd, indexBuckets)
	if _, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range cmds {
			cmds[b] = p.ZRevRangeByScoreWithScores(ctx, s.roomsKey(b), by)
		}
		return nil
	}); err != nil {
		return nil, s.fail(ctx, what, err)
	}
	var zs []goredis.Z
	for _, c := range cmds {
		zs = append(zs, c.Val()...)
	}
	zs = newest(zs, limit)
	out := make([]chat.RoomInfo, 0, len(zs))
	for _, z := range zs {
		name, _ := z.Member.(string)
		out = append(out, chat.RoomInfo{Name: name, LastActivity: time.UnixMilli(int64(z.Score)).UTC()})
	}
	chat.SortRooms(out)
	return out, nil
}

// newest returns the n members of zs with the highest scores (of several
// buckets: each member once).
func newest(zs []goredis.Z, n int) []goredis.Z {
	slices.SortFunc(zs, func(a, b goredis.Z) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Member.(string), b.Member.(string)))
	})
	return zs[:min(n, len(zs))]
}

// oldest returns the n members of zs with the lowest scores.
func oldest(zs []goredis.Z, n int) []goredis.Z {
	slices.SortFunc(zs, func(a, b goredis.Z) int {
		return cmp.Or(cmp.Compare(a.Score, b.Score), cmp.Compare(a.Member.(string), b.Member.(string)))
	})
	return zs[:min(n, len(zs))]
}

// moveMaxScript adds the members ARGV[1], ARGV[3], … with the scores
// ARGV[2], ARGV[4], … to the sorted set KEYS[1], each unless it holds the
// member with a higher score already.
var moveMaxScript = goredis.NewScript(`
for i = 1, #ARGV, 2 do
  local prev = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]))
  if not prev or prev < tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  end
end
return #ARGV / 2
`)

// zremIfScoresScript removes the members ARGV[1], ARGV[3], … from the
// sorted set KEYS[1] where their score is still ARGV[2], ARGV[4], …; it
// returns how many it removed.
var zremIfScoresScript = goredis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
`)

// migrateChunk is how many members of the old index one step moves.
const migrateChunk = 500

// migrateIndex moves the members of the unsharded index of older versions
// (oldRoomsKey) into their buckets, keeping the higher score where a
// bucket has the room already, and removes each from the old index unless
// its score moved meanwhile (an old node posted to it: the next step moves
// it again). The old index is gone (an empty sorted set) when it is done.
// Every script touches one key. Old nodes still running go on writing the
// old index: the janitor calls this at every sweep.
func (s *Store) migrateIndex(ctx context.Context) error {
	// The unsharded presence index of older versions is only read by
	// older nodes, which write it again within half a heartbeat.
	if err := s.client.Unlink(ctx, s.opts.KeyPrefix+"presence-rooms").Err(); err != nil {
		return err
	}
	old := s.oldRoomsKey()
	for range 1000 { // bounded: 500 000 rooms a sweep
		zs, err := s.client.ZRangeWithScores(ctx, old, 0, migrateChunk-1).Result()
		if err != nil || len(zs) == 0 {
			if goredis.HasErrorPrefix(err, "WRONGTYPE") {
				return nil // not ours
			}
			return err
		}
		args := make([][]any, indexBuckets)
		var all []any
		for _, z := range zs {
			name, _ := z.Member.(string)
			pair := []any{name, formatScore(z.Score)}
			b := bucketOf(name)
			args[b] = append(args[b], pair...)
			all = append(all, pair...)
		}
		for b, a := range args {
			if len(a) > 0 {
				if err := moveMaxScript.Run(ctx, s.client, []string{s.roomsKey(b)}, a...).Err(); err != nil {
					return err
				}
			}
		}
		n, err := zremIfScoresScript.Run(ctx, s.client, []string{old}, all...).Int64()
		if err != nil || n == 0 {
			return err // n == 0: all moved meanwhile: the next sweep
		}
	}
	return nil
}
