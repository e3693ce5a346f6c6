package yardstick

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// Limits of a Server: it is meant for a load test on loopback, but a stray
// client must not grow it without bound.
const (
	MaxRooms = 10000
	maxBody  = 32 << 10 // as hxchat's default -max-body
)

// The author of every message: a guest's name and key have these lengths
// in hxchat, so the fragments are of the same size.
const (
	author    = "guest-0000"
	authorKey = "000000000000"
)

var errFull = errors.New("too many rooms")

// Server is a Broadcaster per room behind the part of hxchat's URL
// contract that hxchat-load uses:
//
//	POST /chat/{room}/messages  form field message: the room's next seq,
//	                            published as views.RenderMessage renders
//	                            it; 303 to the room page, as hxchat
//	                            answers a plain form post
//	GET  /chat/{room}/events    the room's live events from now on, with
//	                            "id: SEQ" (no epoch); Last-Event-ID and
//	                            ?after are ignored: nothing is replayed
//	GET  /healthz               200 ok; 503 once closed
//	GET  /metrics               the Go and process collectors (RSS, goroutines)
//
// Room names and message texts are checked by chat's rules (400 when
// broken); nothing else of hxchat is: no store, no history, no identity,
// no presence, no heartbeats, no retry field, no htmx form fragment.
type Server struct {
	mux *http.ServeMux

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool
}

// room is one room's seq counter and broadcaster. mu is held from the seq
// assignment to the publish, so events leave in seq order.
type room struct {
	name string
	mu   sync.Mutex
	seq  int64
	bc   *Broadcaster
}

// NewServer returns a Server without rooms; rooms come into being when
// first posted to or subscribed to.
func NewServer() *Server {
	s := &Server{mux: http.NewServeMux(), rooms: make(map[string]*room)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.mux.HandleFunc("POST /chat/{room}/messages", s.handlePost)
	s.mux.HandleFunc("GET /chat/{room}/events", s.handleEvents)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close ends every open stream and makes the server refuse new ones (and
// posts to new rooms) with 503, so that an http.Server's Shutdown is not
// held up by streams. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, rm := range s.rooms {
		rm.bc.Close()
	}
}

// room returns the named room, making it if need be.
func (s *Server) room(name string) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, http.ErrServerClosed
	}
	rm, ok := s.rooms[name]
	if !ok {
		if len(s.rooms) >= MaxRooms {
			return nil, errFull
		}
		rm = &room{name: name, bc: New()}
		s.rooms[name] = rm
	}
	return rm, nil
}

// roomName returns the {room} of r's path, or answers 400 and "" when it
// breaks chat's rules.
func roomName(w http.ResponseWriter, r *http.Request) string {
	name := r.PathValue("room")
	if err := chat.ValidateRoom(name); err != nil {
		http.Error(w, chat.Reason(err), http.StatusBadRequest)
		return ""
	}
	return name
}

// roomOrFail returns the named room, or answers 503 and nil.
func (s *Server) roomOrFail(w http.ResponseWriter, name string) *room {
	rm, err := s.room(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return nil
	}
	return rm
}

func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	name := roomName(w, r)
	if name == "" {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	text, err := chat.NormalizeText(r.PostForm.Get("message"))
	if err != nil {
		http.Error(w, chat.Reason(err), http.StatusBadRequest)
		return
	}
	rm := s.roomOrFail(w, name)
	if rm == nil {
		return
	}
	if err := rm.post(text); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, views.RoomURL(name), http.StatusSeeOther)
}

// post publishes text as the room's next message.
func (rm *room) post(text string) error {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	m := chat.Message{Room: rm.name, Seq: rm.seq + 1, Author: author, AuthorKey: authorKey, Text: text, Time: time.Now().UTC()}
	html, err := views.RenderMessage(m)
	if err != nil {
		return err
	}
	rm.seq = m.Seq
	rm.bc.Publish(m.Seq, html)
	return nil
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	name := roomName(w, r)
	if name == "" {
		return
	}
	if rm := s.roomOrFail(w, name); rm != nil {
		rm.bc.ServeHTTP(w, r)
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
