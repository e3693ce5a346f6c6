package chat

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Watchers is the Watch half of a store whose messages are committed in
// this process (memory, SQLite): the callbacks of each room. The store
// hands it each committed message with Queue, in seq order per room (under
// its lock, or from its one writer goroutine); a goroutine that runs only
// while messages wait calls the callbacks in that order, so the store
// never waits for a fan-out and fan-out never holds the store's locks. The
// zero value is ready to use.
type Watchers struct {
	mu    sync.RWMutex
	rooms map[string][]*watcherFn // replaced, never changed in place

	qmu     sync.Mutex
	queue   []Message // queued, not yet handed to the callbacks
	running bool      // a goroutine hands the queue over
}

// MaxQueued bounds the messages waiting for their fan-out. Past it the
// oldest are skipped: their watchers meet a gap and read them from the
// store (chat.Follower does), so nothing is lost, only read later.
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

// Queue hands m to the watchers of its room, after every message queued
// before it; it never waits for them. Messages of rooms nobody watches are
// not kept.
func (w *Watchers) Queue(m Message) {
	if !w.Watched(m.Room) {
		return
	}
	w.qmu.Lock()
	if len(w.queue) >= MaxQueued {
		clear(w.queue[:1])
		w.queue = w.queue[1:]
	}
	w.queue = append(w.queue, m)
	start := !w.running
	w.running = true
	w.qmu.Unlock()
	if start {
		go w.drain()
	}
}

// drain publishes the queue until it is empty, then ends.
func (w *Watchers) drain() {
	for {
		w.qmu.Lock()
		batch := w.queue
		w.queue = nil
		if len(batch) == 0 {
			w.running = false
			w.qmu.Unlock()
			return
		}
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
