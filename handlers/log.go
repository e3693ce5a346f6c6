package handlers

import (
	"log/slog"
	"net/http"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// handleLog serves a room's recent messages as a small page that reloads
// itself, for the frame the room page shows when JavaScript is off. It reads
// the same history as the room page.
func handleLog(logger *slog.Logger, history Historian, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room, err := roomParam(r)
		if err != nil {
			renderError(w, r, statusOf(err), "Bad room name", chat.Reason(err))
			return
		}
		msgs, earlier, err := page(r.Context(), history, room, 0, n)
		if err != nil {
			logFailure(logger, r, slog.LevelError, "load history", slog.String("room", room), slog.Any("err", err))
			renderError(w, r, statusOf(err), "History unavailable", publicReason(err))
			return
		}
		// Each reload must ask the server again, never show a cached copy.
		w.Header().Set("Cache-Control", "no-cache")
		render(w, r, http.StatusOK, views.LogPage(room, msgs, earlier))
	}
}
