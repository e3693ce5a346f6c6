package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// Lobby lists the active rooms.
type Lobby interface {
	ActiveRooms(ctx context.Context, since time.Time, limit int) ([]chat.RoomInfo, error)
}

// Roster tells who is in a room.
type Roster interface {
	Members(ctx context.Context, room string) ([]chat.Member, error)
}

// activeWindow is how recent a room's newest message must be for the room
// to count as active (someone present always counts).
const activeWindow = 24 * time.Hour

// roomsState reads the active rooms for the index; a failure is logged and
// shown as such, and never fails the page.
func roomsState(r *http.Request, logger *slog.Logger, lobby Lobby) views.RoomsState {
	rooms, err := lobby.ActiveRooms(r.Context(), time.Now().Add(-activeWindow), chat.MaxActiveRooms)
	if err != nil {
		logFailure(logger, r, slog.LevelWarn, "list active rooms", slog.Any("err", err))
		return views.RoomsState{Unavailable: true}
	}
	return views.RoomsState{Rooms: rooms}
}

// handleRooms serves the list of active rooms as a fragment, which the index
// polls. A failure answers 503 with a fragment saying so (htmx swaps error
// responses too), so the list never turns into an error page.
func handleRooms(logger *slog.Logger, lobby Lobby) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		st := roomsState(r, logger, lobby)
		if st.Unavailable {
			w.Header().Set("Retry-After", retryAfterSeconds)
			render(w, r, http.StatusServiceUnavailable, views.RoomsUnavailable())
			return
		}
		render(w, r, http.StatusOK, views.RoomList(st.Rooms))
	}
}

// presentFor returns who is in room as the room page shows it: the members
// the roster knows, and the viewer, whom the page's stream joins a moment
// later anyway; if the roster cannot be read, the viewer only.
func presentFor(r *http.Request, logger *slog.Logger, roster Roster, room string) []chat.Member {
	members, err := roster.Members(r.Context(), room)
	if err != nil {
		logFailure(logger, r, slog.LevelWarn, "read presence", slog.String("room", room), slog.Any("err", err))
		members = nil
	}
	p := PersonFrom(r.Context())
	if p.Key == "" {
		return members
	}
	for _, m := range members {
		if m.Key == p.Key {
			return members
		}
	}
	members = append(members, chat.Member{Key: p.Key, Name: p.DisplayName()})
	chat.SortMembers(members)
	return members
}
