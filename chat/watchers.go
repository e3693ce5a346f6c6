package chat

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Watchers is the Watch half of a store whose messages are committed in
// this process (memory, SQLite): the callbacks of each room. The store
// hands it each committed message with Queue, in seq order per room (under
// its lock, or from its one writer goroutine); for each room, a goroutine
// that runs only while the room has messages waiting calls the callbacks
// in that order. So the store never waits for a fan-out, a fan-out never
// holds the store's locks, and rooms are fanned out in parallel. The zero
// value is ready to use.
type Watchers struct {
	mu    sync.RWMutex
	rooms map[string][]*watcherFn // replaced, never changed in place

	// queues holds each room's messages waiting for their fan-out, in seq
	// order; a room is in it while its goroutine runs.
	qmu    sync.Mutex
	queues map[string][]Message
}

// MaxQueued bounds the messages of one room waiting for their fan-out.
// Past it the oldest are skipped: their watchers meet a gap and read them
// from the store (chat.Follower does), so nothing is lost, only read later.
const MaxQueued = 4096

type watcherFn struct {
	fn      func(Message)
	stopped atomic.Bool
}

// Watch implements Store.Watch for the store that owns w.
func (w *Watchers) Watch(room string, fn func(Message)) (stop func()) {
	x := &watcherFn{fn: fn}
	w.mu.Lock()
	if w.rooms == nil {
		w.rooms = make(map[string][]*watcherFn)
	}
	w.rooms[room] = append(slices.Clip(w.rooms[room]), x)
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			x.stopped.Store(true)
			w.mu.Lock()
			defer w.mu.Unlock()
			fns := slices.DeleteFunc(slices.Clone(w.rooms[room]), func(y *watcherFn) bool { return y == x })
			if len(fns) == 0 {
				delete(w.rooms, room)
			} else {
				w.rooms[room] = fns
			}
		})
	}
}

// Watched reports whether room has watchers.
func (w *Watchers) Watched(room string) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.rooms[room]) > 0
}

// Queue hands m to the watchers of its room, after every message of the
// room queued before it, on a goroutine that runs while the room has
// messages waiting; it never waits for the watchers. Messages of rooms
// nobody watches are not kept.
func (w *Watchers) Queue(m Message) {
	if !w.Watched(m.Room) {
		return
	}
	w.qmu.Lock()
	if w.queues == nil {
		w.queues = make(map[string][]Message)
	}
	q, running := w.queues[m.Room]
	if len(q) >= MaxQueued {
		clear(q[:1])
		q = q[1:]
	}
	w.queues[m.Room] = append(q, m)
	w.qmu.Unlock()
	if !running {
		go w.drain(m.Room)
	}
}

// drain hands room's queue to its watchers until it is empty, then ends.
func (w *Watchers) drain(room string) {
	for {
		w.qmu.Lock()
		batch := w.queues[room]
		if len(batch) == 0 {
			delete(w.queues, room)
			w.qmu.Unlock()
			return
		}
		w.queues[room] = nil // still running: later messages queue behind
		w.qmu.Unlock()
		for _, m := range batch {
			w.Publish(m)
		}
	}
}

// Publish calls the watchers of m.Room with m, on the caller's goroutine.
func (w *Watchers) Publish(m Message) {
	w.mu.RLock()
	fns := w.rooms[m.Room]
	w.mu.RUnlock()
	for _, x := range fns {
		if !x.stopped.Load() {
			x.fn(m)
		}
	}
}
