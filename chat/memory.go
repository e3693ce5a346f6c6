package chat

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultRetention is how many messages per room a store keeps by default.
const DefaultRetention = 1000

// DefaultMaxRooms is how many rooms a MemoryStore keeps by default.
const DefaultMaxRooms = 10000

// MemoryStore is a Store that keeps the newest messages of each room in
// memory, for at most a bounded number of rooms: when a new room would
// exceed it, the room that was posted to least recently is forgotten. With
// WithMaxAge it also drops messages older than an age.
// History is lost when the process ends: each MemoryStore is an epoch of
// its own. Appends queue their messages for the watchers under the store's
// lock, so the watchers get each room's messages in seq order, and no
// append waits for a fan-out (see Watchers).
type MemoryStore struct {
	retention int
	maxRooms  int
	maxAge    time.Duration // 0: keep
	epoch     string
	watchers  Watchers

	mu     sync.RWMutex
	rooms  map[string]*memRoom
	lru    *list.List // of room names, most recently posted first
	closed bool
	// evictedLast is the highest seq of any forgotten room. A room that
	// comes back continues after it, so no seq of a room is handed out
	// twice: readers holding an older cursor see a trim, not old news.
	evictedLast int64
	secret      []byte // created by the first Secret call
}

// MemoryOption configures a MemoryStore.
type MemoryOption func(*MemoryStore)

// WithMaxRooms bounds the number of rooms kept (DefaultMaxRooms when n <= 0).
func WithMaxRooms(n int) MemoryOption {
	return func(s *MemoryStore) {
		if n > 0 {
			s.maxRooms = n
		}
	}
}

// WithMaxAge drops messages older than d, by their Time: reads skip them at
// once, and an append to a room frees the room's old ones (its memory is
// bounded by the retention either way). A room keeps counting its seqs.
// d <= 0 keeps messages until the retention or the room bound drops them.
func WithMaxAge(d time.Duration) MemoryOption {
	return func(s *MemoryStore) { s.maxAge = max(d, 0) }
}

var (
	_ Store        = (*MemoryStore)(nil)
	_ SecretKeeper = (*MemoryStore)(nil)
)

// memRoom is a ring of the newest messages: msgs[(seq-base-1) % retention]
// holds seq, for the n seqs up to last. The ring grows up to retention:
// while it does, the next seq's slot is the next one appended.
type memRoom struct {
	base int64     // seqs up to base were given out before the ring (re)started
	last int64     // newest seq
	n    int       // messages held: seqs last-n+1 to last
	msgs []Message // ring buffer, grows up to retention
	elem *list.Element
}

// NewMemoryStore returns an empty MemoryStore keeping retention messages per
// room (DefaultRetention when retention <= 0).
func NewMemoryStore(retention int, opts ...MemoryOption) *MemoryStore {
	if retention <= 0 {
		retention = DefaultRetention
	}
	s := &MemoryStore{retention: retention, maxRooms: DefaultMaxRooms, epoch: NewEpoch(), rooms: make(map[string]*memRoom), lru: list.New()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Append implements Store.
func (s *MemoryStore) Append(ctx context.Context, m Message) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Message{}, fmt.Errorf("append to %q: %w", m.Room, ErrClosed)
	}
	r := s.rooms[m.Room]
	if r == nil {
		if len(s.rooms) >= s.maxRooms {
			oldest := s.lru.Back()
			s.evictedLast = max(s.evictedLast, s.rooms[oldest.Value.(string)].last)
			delete(s.rooms, oldest.Value.(string))
			s.lru.Remove(oldest)
		}
		r = &memRoom{base: s.evictedLast, last: s.evictedLast, elem: s.lru.PushFront(m.Room)}
		s.rooms[m.Room] = r
	} else {
		s.lru.MoveToFront(r.elem)
		if s.maxAge > 0 {
			r.expire(time.Now().Add(-s.maxAge), s.retention)
		}
	}
	m = r.push(m, s.epoch, s.retention)
	s.watchers.Queue(m) // under the lock: the queue is in seq order
	return m, nil
}

// push gives m the room's next seq and the epoch and puts it in the ring,
// over the oldest message once the ring holds retention.
func (r *memRoom) push(m Message, epoch string, retention int) Message {
	r.last++
	m.Seq = r.last
	m.Epoch = epoch
	if len(r.msgs) < retention {
		r.msgs = append(r.msgs, m)
	} else {
		r.msgs[(m.Seq-r.base-1)%int64(retention)] = m
	}
	r.n = min(r.n+1, retention)
	return m
}

// Watch implements Store.
func (s *MemoryStore) Watch(room string, fn func(Message)) (stop func()) {
	return s.watchers.Watch(room, fn)
}

// first returns the oldest seq still held (1 when nothing was trimmed),
// last+1 when none is.
func (r *memRoom) first() int64 { return r.last - int64(r.n) + 1 }

// at returns the message with seq, which must be within [first, last].
func (r *memRoom) at(seq int64, retention int) Message {
	return r.msgs[(seq-r.base-1)%int64(retention)]
}

// fresh returns the oldest seq held from which on the messages are not
// older than cutoff (last+1 when all are): the ones before it are expired.
// Messages are in time order but for posts that raced, so the older ones
// are those at the front.
func (r *memRoom) fresh(cutoff time.Time, retention int) int64 {
	seq := r.first()
	for seq <= r.last && r.at(seq, retention).Time.Before(cutoff) {
		seq++
	}
	return seq
}

// expire frees the messages older than cutoff at the front of the ring. An
// empty ring starts over, from its first slot, with the next seq.
func (r *memRoom) expire(cutoff time.Time, retention int) {
	for seq, end := r.first(), r.fresh(cutoff, retention); seq < end; seq++ {
		r.msgs[(seq-r.base-1)%int64(retention)] = Message{}
		r.n--
	}
	if r.n == 0 {
		r.msgs, r.base = nil, r.last
	}
}

// oldest returns the oldest seq a read returns: the first held and not
// expired.
func (s *MemoryStore) oldest(r *memRoom) int64 {
	if s.maxAge > 0 {
		return r.fresh(time.Now().Add(-s.maxAge), s.retention)
	}
	return r.first()
}

// Since implements Store.
func (s *MemoryStore) Since(ctx context.Context, room string, after int64, limit int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("since in %q: %w", room, ErrClosed)
	}
	r := s.rooms[room]
	if r == nil || limit <= 0 || after >= r.last {
		return nil, nil
	}
	from := max(after+1, s.oldest(r))
	n := min(r.last-from+1, int64(limit)) // from+limit-1 overflows for a huge limit
	if n <= 0 {
		return nil, nil
	}
	out := make([]Message, 0, n)
	for seq := from; seq < from+n; seq++ {
		out = append(out, r.at(seq, s.retention))
	}
	return out, nil
}

// Recent implements Store.
func (s *MemoryStore) Recent(ctx context.Context, room string, n int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("recent in %q: %w", room, ErrClosed)
	}
	r := s.rooms[room]
	if r == nil || n <= 0 {
		return nil, nil
	}
	from := max(s.oldest(r), r.last-int64(n)+1)
	if from > r.last {
		return nil, nil
	}
	out := make([]Message, 0, r.last-from+1)
	for seq := from; seq <= r.last; seq++ {
		out = append(out, r.at(seq, s.retention))
	}
	return out, nil
}

// Before implements Store.
func (s *MemoryStore) Before(ctx context.Context, room string, before int64, n int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("before in %q: %w", room, ErrClosed)
	}
	r := s.rooms[room]
	if r == nil || n <= 0 || before <= 1 {
		return nil, nil
	}
	to := min(before-1, r.last)
	from := max(s.oldest(r), to-int64(n)+1)
	if from > to {
		return nil, nil
	}
	out := make([]Message, 0, to-from+1)
	for seq := from; seq <= to; seq++ {
		out = append(out, r.at(seq, s.retention))
	}
	return out, nil
}

// Delete implements Store: the message's slot in the ring loses its text,
// and the record is appended and queued under the same lock.
func (s *MemoryStore) Delete(ctx context.Context, d Deletion) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Message{}, fmt.Errorf("delete in %q: %w", d.Room, ErrClosed)
	}
	r := s.rooms[d.Room]
	if r == nil || d.Seq < s.oldest(r) || d.Seq > r.last {
		return Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, ErrNotFound)
	}
	slot := &r.msgs[(d.Seq-r.base-1)%int64(s.retention)]
	switch {
	case slot.Deletes != 0:
		return Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, ErrNotFound)
	case !d.Any && slot.AuthorKey != d.By:
		return Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, ErrNotAuthor)
	case slot.Deleted:
		return Message{}, fmt.Errorf("delete %d in %q: %w", d.Seq, d.Room, ErrAlreadyDeleted)
	}
	slot.Text, slot.Deleted = "", true
	s.lru.MoveToFront(r.elem)
	rec := r.push(Message{Room: d.Room, AuthorKey: d.By, Time: d.Time, Deletes: d.Seq}, s.epoch, s.retention)
	s.watchers.Queue(rec)
	return rec, nil
}

// Secret implements SecretKeeper: a random secret made by the first call,
// the same for the life of the store (and lost with it).
func (s *MemoryStore) Secret(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("secret: %w", ErrClosed)
	}
	if s.secret == nil {
		s.secret = NewSecret()
	}
	return bytes.Clone(s.secret), nil
}

// Close implements Store.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.rooms = nil
	s.lru.Init()
	return nil
}
