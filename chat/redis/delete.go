package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hxchat/hxchat/chat"
)

// Deletions. A stream entry cannot be edited, so Delete takes the message's
// entry out of the stream (XDEL) and keeps what a placeholder shows (the
// seq, the author's key and name, the time; never the text) in the room's
// sorted set …room:{NAME}:deleted, scored by seq; then it appends the
// deletion record as an append does. All of it is deleteScript, one atomic
// step on the room's keys (one slot).
//
// The stream then has a hole where the message was. Reads fill such holes
// from the deleted set (see query), only when a read finds one, so a room
// without deletions reads as it always did. A room's retained history is
// the seqs from its counter less Options.Retention, +1, up to the counter,
// as in the memory store: an append trims the stream to Retention entries,
// which after deletions span more seqs than that, and reads leave out the
// older ones; deleteScript trims the stream and the deleted set to that
// window exactly, so both stay within Retention members.

// Codes deleteScript returns instead of {seq, epoch, activity}; nothing
// was written then.
const (
	deleteNotFound  = -1
	deleteNotAuthor = -2
	deleteAlready   = -3
)

// deleteScript erases message ARGV[10] and appends its deletion record
// (appendLua with a deletes field, stored and published), unless the
// message is not in the room's window (never stored, trimmed, or a
// record: deleteNotFound), its author's key is not ARGV[6] and ARGV[11] is
// not "1" (deleteNotAuthor), or it is deleted already (deleteAlready).
//
// KEYS: seq counter, stream, epoch, activity, deleted set (one hash tag).
// ARGV: as appendScript's (retention, channel, author "", text "", time,
// the deleter's key, time in ms, a fresh epoch, sharded), then the seq to
// delete and "1" when anyone's message may be deleted.
var deleteScript = goredis.NewScript(headLua + `
local retention = tonumber(ARGV[1])
local target = tonumber(ARGV[10])
if not target or target < 1 or target > cur or target <= cur - retention then return -1 end
local id = string.format('%d-0', target)
local e = redis.call('XRANGE', KEYS[2], id, id)
if not e[1] then
  local d = redis.call('ZRANGEBYSCORE', KEYS[5], target, target)
  if not d[1] then return -1 end
  if ARGV[11] ~= '1' and cjson.decode(d[1]).key ~= ARGV[6] then return -2 end
  return -3
end
local f = {}
local kv = e[1][2]
for i = 1, #kv, 2 do f[kv[i]] = kv[i + 1] end
if f['deletes'] then return -1 end
if ARGV[11] ~= '1' and (f['key'] or '') ~= ARGV[6] then return -2 end
redis.call('XDEL', KEYS[2], id)
redis.call('ZADD', KEYS[5], target, cjson.encode({seq = ARGV[10], key = f['key'] or '', author = f['author'] or '', time = f['time'] or ''}))
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', cur + 1 - retention)
local maxlen = retention - redis.call('ZCARD', KEYS[5])
if maxlen < 1 then maxlen = 1 end
` + appendLua(", 'deletes', ARGV[10]", ", deletes = target"))

// deletedMember is a member of the deleted set.
type deletedMember struct {
	Seq    string `json:"seq"`
	Key    string `json:"key"`
	Author string `json:"author"`
	Time   string `json:"time"`
}

// Delete implements chat.Store: one deleteScript (see the top of this
// file), then, with Options.Replicas, WAIT as for Append, and the rooms
// index update when due. An error wrapping chat.ErrUnavailable may leave
// the deletion done.
func (s *Store) Delete(ctx context.Context, d chat.Deletion) (chat.Message, error) {
	what := fmt.Sprintf("delete %d in %q", d.Seq, d.Room)
	if err := s.check(ctx, what); err != nil {
		return chat.Message{}, err
	}
	if d.Seq < 1 {
		return chat.Message{}, fmt.Errorf("%s: %w", what, chat.ErrNotFound)
	}
	k := s.keys(d.Room)
	keys := []string{k.seq, k.log, k.epoch, k.active, k.deleted}
	anyone := "0"
	if d.Any {
		anyone = "1"
	}
	at := d.Time.UnixMilli()
	args := []any{s.opts.Retention, k.live, "", "", d.Time.Format(time.RFC3339Nano), d.By,
		at, chat.NewEpoch(), s.sharded(), d.Seq, anyone}
	var (
		res            any
		waitErr, err   error
		rec            = chat.Message{Room: d.Room, AuthorKey: d.By, Time: d.Time, Deletes: d.Seq}
		idx            *goredis.Cmd
		replicated     = s.replicas > 0
		refused, isNum = int64(0), false
	)
	if replicated {
		res, waitErr, err = s.evalAndWait(ctx, deleteScript, keys, args)
	} else {
		res, err = deleteScript.Run(ctx, s.client, keys, args...).Result()
	}
	if err != nil {
		return chat.Message{}, s.fail(ctx, what, err)
	}
	if refused, isNum = res.(int64); isNum {
		switch refused {
		case deleteNotFound:
			return chat.Message{}, fmt.Errorf("%s: %w", what, chat.ErrNotFound)
		case deleteNotAuthor:
			return chat.Message{}, fmt.Errorf("%s: %w", what, chat.ErrNotAuthor)
		case deleteAlready:
			return chat.Message{}, fmt.Errorf("%s: %w", what, chat.ErrAlreadyDeleted)
		}
		return chat.Message{}, fmt.Errorf("%s: unexpected reply %d from the delete script", what, refused)
	}
	if s.indexDue(d.Room, at) {
		idx = indexScript.Run(ctx, s.client, []string{s.roomsKeyOf(d.Room)}, at, d.Room)
	}
	reply, _ := res.([]any)
	out, err := s.appended(ctx, rec, reply, idx)
	if err != nil {
		return chat.Message{}, err
	}
	if waitErr != nil {
		return chat.Message{}, s.fail(ctx, fmt.Sprintf("%s (record seq %d)", what, out.Seq), waitErr)
	}
	return out, nil
}

// The kinds of query.
const (
	sinceQuery  = iota // seqs > after, oldest first, at most n
	recentQuery        // the newest n
	beforeQuery        // the newest n with seqs < before
)

// query is one read of a room's history: Since, Recent, Before or the
// feed's catch-up.
type query struct {
	kind   int
	after  int64 // sinceQuery: >= 0
	before int64 // beforeQuery: > 1
	n      int   // > 0
}

// entries queues the stream read of q.
func (q query) entries(ctx context.Context, p goredis.Pipeliner, log string) *goredis.XMessageSliceCmd {
	switch q.kind {
	case sinceQuery:
		return p.XRangeN(ctx, log, entryID(q.after+1), "+", int64(q.n))
	case recentQuery:
		return p.XRevRangeN(ctx, log, "+", "-", int64(q.n))
	default:
		return p.XRevRangeN(ctx, log, entryID(q.before-1), "-", int64(q.n))
	}
}

// deleted queues the read of the deleted set that matches entries: the
// same seqs, as many at most.
func (q query) deleted(ctx context.Context, p goredis.Pipeliner, set string) *goredis.StringSliceCmd {
	switch q.kind {
	case sinceQuery:
		return p.ZRangeByScore(ctx, set, &goredis.ZRangeBy{Min: strconv.FormatInt(q.after+1, 10), Max: "+inf", Count: int64(q.n)})
	case recentQuery:
		return p.ZRevRangeByScore(ctx, set, &goredis.ZRangeBy{Min: "-inf", Max: "+inf", Count: int64(q.n)})
	default:
		return p.ZRevRangeByScore(ctx, set, &goredis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(q.before-1, 10), Count: int64(q.n)})
	}
}

// entryError is a stream entry or deleted member nothing can decode.
type entryError struct{ err error }

func (e *entryError) Error() string { return e.err.Error() }
func (e *entryError) Unwrap() error { return e.err }

// failRead wraps an error of query: a bad entry as it is, Redis's as fail.
func (s *Store) failRead(ctx context.Context, what string, err error) error {
	var bad *entryError
	if errors.As(err, &bad) {
		return fmt.Errorf("%s: %w", what, bad.err)
	}
	return s.fail(ctx, what, err)
}

// query reads q in room: its entries and the room's counter and epoch in
// one MULTI/EXEC (read), with extra's commands queued in it too. When the
// entries leave holes within the room's window (see messages), it reads
// again, with the deleted set in the same MULTI/EXEC, so placeholders and
// entries are of one moment. skip, when not nil, is told of entries that
// cannot be decoded, which are then left out (else they fail the read).
// The messages carry the epoch of the snapshot, which it returns.
func (s *Store) query(ctx context.Context, room string, q query, extra func(p goredis.Pipeliner), skip func(id string, err error)) (snapshot, []chat.Message, error) {
	withDeleted := false
	for try := 0; ; try++ {
		snap, err := s.read(ctx, room, q, withDeleted, extra)
		if err != nil {
			return snapshot{}, nil, err
		}
		msgs, holes, again, err := s.messages(room, q, snap, skip)
		if err != nil {
			return snapshot{}, nil, err
		}
		switch {
		case again > q.after && try < 4:
			// Since from below the window: every entry read was older
			// than it (entries an append's trim kept after deletions).
			q.after = again
			continue
		case holes && !withDeleted:
			withDeleted = true
			continue
		}
		return snap, msgs, nil
	}
}

// messages makes the messages q reads of snap: its entries and, when the
// deleted set was read, placeholders for the deleted seqs among them, each
// of snap's epoch, oldest first. Seqs below the room's window (the counter
// less Options.Retention) are left out. holes reports, when the deleted
// set was not read, that the entries leave out seqs of the window within
// the range they cover: deleted messages, or those the janitor removed
// (MaxAge), which only the deleted set tells apart. again, when positive,
// asks a Since to read again after it: every entry read was below the
// window.
func (s *Store) messages(room string, q query, snap snapshot, skip func(id string, err error)) (msgs []chat.Message, holes bool, again int64, err error) {
	low := max(snap.seq-int64(s.opts.Retention)+1, 1)
	rev := q.kind != sinceQuery
	raw := snap.entries
	full := len(raw) == q.n
	// rawEnd is the seq the entries read end at (their last, in the order
	// read), rawTop the highest.
	var rawEnd, rawTop int64
	es := make([]chat.Message, 0, len(raw))
	for i, x := range raw {
		seq, perr := entrySeq(x.ID)
		if perr != nil {
			seq = 0
		}
		if i == len(raw)-1 {
			rawEnd = seq
		}
		rawTop = max(rawTop, seq)
		if perr == nil && seq < low {
			continue
		}
		m, err := decodeEntry(room, x)
		if err != nil {
			if skip == nil {
				return nil, false, 0, &entryError{err}
			}
			skip(x.ID, err)
			continue
		}
		m.Epoch = snap.epoch
		es = append(es, m)
	}
	if rev {
		slices.Reverse(es)
	}
	if q.kind == sinceQuery && full && len(es) == 0 && rawEnd < low && low-1 > q.after {
		return nil, false, low - 1, nil
	}
	// The range of seqs [lo, hi] the read covers.
	var lo, hi int64
	newest := max(snap.seq, rawTop)
	switch q.kind {
	case sinceQuery:
		lo, hi = max(q.after+1, low), newest
		if full {
			hi = rawEnd
		}
	default:
		hi = newest
		if q.kind == beforeQuery {
			hi = min(q.before-1, newest)
		}
		lo = low
		if full {
			lo = max(rawEnd, low)
		}
	}
	if snap.deleted == nil {
		return es, hi >= lo && int64(len(es)) < hi-lo+1, 0, nil
	}
	// Placeholders, in the bounds of what both reads cover.
	ds := make([]chat.Message, 0, len(snap.deleted))
	for _, member := range snap.deleted {
		var dm deletedMember
		if err := json.Unmarshal([]byte(member), &dm); err != nil {
			return nil, false, 0, &entryError{fmt.Errorf("room %q: bad deleted member %q: %w", room, member, err)}
		}
		seq, err := strconv.ParseInt(dm.Seq, 10, 64)
		if err != nil {
			return nil, false, 0, &entryError{fmt.Errorf("room %q: bad deleted member %q", room, member)}
		}
		t, _ := time.Parse(time.RFC3339Nano, dm.Time) // a placeholder without a time shows none
		ds = append(ds, chat.Message{Room: room, Seq: seq, Epoch: snap.epoch, Author: dm.Author, AuthorKey: dm.Key, Time: t, Deleted: true})
	}
	if rev {
		slices.Reverse(ds)
	}
	if len(ds) == q.n && len(ds) > 0 {
		if rev {
			lo = max(lo, ds[0].Seq)
		} else {
			hi = min(hi, ds[len(ds)-1].Seq)
		}
	}
	msgs = make([]chat.Message, 0, len(es)+len(ds))
	i, j := 0, 0
	for i < len(es) || j < len(ds) {
		var m chat.Message
		switch {
		case j == len(ds) || i < len(es) && es[i].Seq <= ds[j].Seq:
			if j < len(ds) && es[i].Seq == ds[j].Seq {
				j++ // deleted after the entries were read: cannot be, in one MULTI
			}
			m = es[i]
			i++
		default:
			m = ds[j]
			j++
		}
		if m.Seq >= lo && m.Seq <= hi {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) > q.n {
		if rev {
			msgs = msgs[len(msgs)-q.n:]
		} else {
			msgs = msgs[:q.n]
		}
	}
	return msgs, false, 0, nil
}
