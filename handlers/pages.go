package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/go-chi/chi/v5"
	"golang.org/x/text/unicode/norm"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// Historian reads a room's history: the newest messages, and the pages
// before them.
type Historian interface {
	Recent(ctx context.Context, room string, n int) ([]chat.Message, error)
	Before(ctx context.Context, room string, before int64, n int) ([]chat.Message, error)
}

// page reads a page of room's history: the n messages before seq before
// (the newest n when before is 0), and the seq to page back from when
// older messages are kept (0: none). It reads one message more than it
// returns, to know.
func page(ctx context.Context, h Historian, room string, before int64, n int) (msgs []chat.Message, earlier int64, err error) {
	if before > 0 {
		msgs, err = h.Before(ctx, room, before, n+1)
	} else {
		msgs, err = h.Recent(ctx, room, n+1)
	}
	if err != nil || len(msgs) <= n {
		return msgs, 0, err
	}
	return msgs[1:], msgs[1].Seq, nil
}

// beforeParam returns the page asked for by ?before=SEQ (0: the newest):
// one seq (parseSeq). ok is false for anything else.
func beforeParam(r *http.Request) (seq int64, ok bool) {
	v, asked := r.URL.Query()["before"]
	if !asked {
		return 0, true
	}
	if len(v) != 1 {
		return 0, false
	}
	return parseSeq(v[0])
}

// roomParam returns the validated room name from the URL path.
func roomParam(r *http.Request) (string, error) {
	room := chi.URLParam(r, "room")
	// chi routes on the escaped path only when it differs from the decoded
	// one (RawPath set, as with %2F); only then is the parameter still
	// escaped. Decoding a decoded name again would make /chat/a%2541/ the
	// room "aA".
	if r.URL.RawPath != "" {
		var err error
		if room, err = url.PathUnescape(room); err != nil {
			return "", chat.ValidateRoom("\x00") // not a name: reported as a bad character
		}
	}
	if err := chat.ValidateRoom(room); err != nil {
		return "", err
	}
	return room, nil
}

// handleIndex shows the room form, the name form and the active rooms.
func handleIndex(logger *slog.Logger, lobby Lobby) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		render(w, r, http.StatusOK, views.Index("", "", nameState(r), roomsState(r, logger, lobby)))
	}
}

// handleRoomQuery turns the index form's ?room=NAME into a redirect to the
// room, or shows the index again with what is wrong with the name.
func handleRoomQuery(logger *slog.Logger, lobby Lobby, m *Metrics) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Composed (NFC), as room names must be: what a keyboard or a
		// paste made decomposed is the same name.
		room := norm.NFC.String(strings.TrimSpace(r.URL.Query().Get("room")))
		if err := chat.ValidateRoom(room); err != nil {
			m.rejected("bad_room")
			render(w, r, statusOf(err), views.Index(strings.ToValidUTF8(room, "\uFFFD"), chat.Reason(err), nameState(r), roomsState(r, logger, lobby)))
			return
		}
		http.Redirect(w, r, views.RoomURL(room), http.StatusSeeOther)
	}
}

// RoomReader reads what a room page shows: its history and who is there.
type RoomReader interface {
	Historian
	Roster
}

func handleRoom(logger *slog.Logger, rooms RoomReader, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room, err := roomParam(r)
		if err != nil {
			renderError(w, r, statusOf(err), "Bad room name", chat.Reason(err))
			return
		}
		before, ok := beforeParam(r)
		if !ok {
			renderError(w, r, http.StatusBadRequest, "Bad page", "?before= takes a message number (1 or more).")
			return
		}
		if before == 0 {
			renderRoom(w, r, logger, rooms, n, room, http.StatusOK, views.FormState{})
			return
		}
		// A page back: the fragment for htmx's "Load earlier messages",
		// or a page of its own.
		w.Header().Add("Vary", "HX-Request")
		msgs, earlier, err := page(r.Context(), rooms, room, before, n)
		if err != nil {
			logFailure(logger, r, slog.LevelError, "load history", slog.String("room", room), slog.Any("err", err))
			renderError(w, r, statusOf(err), "History unavailable", publicReason(err))
			return
		}
		if r.Header.Get("HX-Request") == "true" {
			render(w, r, http.StatusOK, views.LogPageOf(room, msgs, earlier))
			return
		}
		render(w, r, http.StatusOK, views.RoomArchive(room, msgs, earlier))
	}
}

// renderRoom renders the room page with form in the given state, for the
// person making r.
func renderRoom(w http.ResponseWriter, r *http.Request, logger *slog.Logger, rooms RoomReader, n int, room string, status int, form views.FormState) {
	renderRoomWith(w, r, logger, rooms, n, room, status, form, nameState(r))
}

// renderRoomWith is renderRoom with the name form in the given state.
func renderRoomWith(w http.ResponseWriter, r *http.Request, logger *slog.Logger, rooms RoomReader, n int, room string, status int, form views.FormState, name views.NameState) {
	msgs, earlier, err := page(r.Context(), rooms, room, 0, n)
	if err != nil {
		logFailure(logger, r, slog.LevelError, "load history", slog.String("room", room), slog.Any("err", err))
		renderError(w, r, statusOf(err), "History unavailable", publicReason(err))
		return
	}
	render(w, r, status, views.Room(room, msgs, earlier, form, name, presentFor(r, logger, rooms, room)))
}

// render writes a component as an HTML response with status.
func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = c.Render(r.Context(), w)
}

// renderError writes a full error page.
func renderError(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	render(w, r, status, views.ErrorPage(title, detail))
}

// Pinger reports whether a server the chat depends on answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// handleHealth answers 200 "ok" while serving, and 503 while draining or
// when the store's server (Redis) does not answer within a second. pinger
// and draining may be nil.
func handleHealth(logger *slog.Logger, pinger Pinger, draining func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if draining != nil && draining() {
			w.Header().Set("Retry-After", retryAfterSeconds)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining: this node is shutting down\n"))
			return
		}
		if pinger != nil {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			defer cancel()
			if err := pinger.Ping(ctx); err != nil {
				logFailure(logger, r, slog.LevelWarn, "health: store unavailable", slog.Any("err", err))
				w.Header().Set("Retry-After", retryAfterSeconds)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("unavailable: the store does not answer\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	}
}
