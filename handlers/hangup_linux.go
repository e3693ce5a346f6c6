//go:build linux

package handlers

import (
	"crypto/tls"
	"net"
	"sync"
	"syscall"
)

// hangups learns that the clients of taken-over streams went away without
// a goroutine per connection: every watched socket is in one epoll set,
// edge-triggered on input, the peer's shutdown and errors, and one
// goroutine waits on the set. An idle stream thus costs no reader
// goroutine of ours (its 2 KiB stack and its goroutine struct).
var hangups hangupWatcher

// epollET is EPOLLET as the uint32 the event mask is.
const epollET = 1 << 31

type hangupWatcher struct {
	once sync.Once
	epfd int // -1: epoll is unavailable, callers fall back to a reader

	mu   sync.Mutex
	gen  uint32                // registrations so far
	byFD map[int32]hangupWatch // the current registration of each socket
}

// hangupWatch is one registration. Its generation travels with the epoll
// event, so an event of a socket that was closed, and whose number was
// reused by a new connection, is not taken for the new one's.
type hangupWatch struct {
	gen uint32
	fn  func()
}

// watch calls fn once, on the watcher's goroutine, when conn's client
// sends anything, shuts its side down or the connection fails. fn must not
// block. The returned stop must be called before conn is closed. ok is
// false when conn cannot be watched this way.
func (h *hangupWatcher) watch(conn net.Conn, fn func()) (stop func(), ok bool) {
	h.once.Do(h.start)
	if h.epfd < 0 {
		return nil, false
	}
	if tc, isTLS := conn.(*tls.Conn); isTLS {
		conn = tc.NetConn()
	}
	sc, isSC := conn.(syscall.Conn)
	if !isSC {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	var (
		fd   int32
		gen  uint32
		cerr error
	)
	err = raw.Control(func(s uintptr) {
		fd = int32(s)
		h.mu.Lock()
		h.gen++
		gen = h.gen
		h.byFD[fd] = hangupWatch{gen: gen, fn: fn}
		h.mu.Unlock()
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: fd, Pad: int32(gen)}
		cerr = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_ADD, int(s), &ev)
	})
	forget := func() {
		h.mu.Lock()
		if w, ok := h.byFD[fd]; ok && w.gen == gen {
			delete(h.byFD, fd)
		}
		h.mu.Unlock()
	}
	if err != nil || cerr != nil {
		forget()
		return nil, false
	}
	return func() {
		forget()
		_ = raw.Control(func(s uintptr) {
			_ = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_DEL, int(s), &syscall.EpollEvent{})
		})
	}, true
}

func (h *hangupWatcher) start() {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		h.epfd = -1
		return
	}
	h.epfd = fd
	h.byFD = make(map[int32]hangupWatch)
	go h.loop()
}

// loop runs for the life of the process; it blocks in epoll_wait, which
// holds an OS thread but no P.
func (h *hangupWatcher) loop() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(h.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// Not expected of a valid epoll fd. Streams still end when a
			// write to a gone client fails, at the latest at a heartbeat.
			return
		}
		for _, ev := range events[:n] {
			h.mu.Lock()
			w, ok := h.byFD[ev.Fd]
			if ok && w.gen == uint32(ev.Pad) {
				delete(h.byFD, ev.Fd)
			} else {
				ok = false
			}
			h.mu.Unlock()
			if ok {
				w.fn()
			}
		}
	}
}
