package chat

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Watchers is the Watch half of a store whose messages are committed in
// this process (memory, SQLite): the callbacks of each room, called by
// Publish. The store calls Publish in seq order per room (under the room's
// lock, or from its one writer goroutine); Watchers adds no order of its
// own. The zero value is ready to use.
type Watchers struct {
	mu    sync.RWMutex
	rooms map[string][]*watcherFn // replaced, never changed in place
}

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
