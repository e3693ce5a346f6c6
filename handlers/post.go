package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// Poster posts a message to a room.
type Poster interface {
	Post(ctx context.Context, room string, author chat.Author, text string) (chat.Message, error)
}

// Hub is what the pages and the POST handler use of the chat hub.
type Hub interface {
	Poster
	Deleter
	Historian
	Lobby
	Roster
}

// handlePost stores a message. An htmx request gets a fresh, empty form
// fragment; a plain form post is redirected back to the room (post,
// redirect, get). Refused input is shown next to the form with a 4xx status,
// in both modes, and nothing is stored.
func handlePost(logger *slog.Logger, hub Hub, m *Metrics, cfg Config, limit *postLimiter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		htmx := r.Header.Get("HX-Request") == "true"
		room, err := roomParam(r)
		if err != nil {
			m.rejected("bad_room")
			renderError(w, r, statusOf(err), "Bad room name", chat.Reason(err))
			return
		}
		fail := func(status int, reason, text string) {
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", retryAfterSeconds)
			}
			form := views.FormState{Text: strings.ToValidUTF8(text, "\uFFFD"), Problem: reason}
			if htmx {
				render(w, r, status, views.MessageForm(room, form))
				return
			}
			renderRoom(w, r, logger, hub, cfg.History, room, status, form)
		}

		// The rate is checked before the body is read and anything stored.
		if ok, wait := limit.allow(clientOf(r)); !ok {
			refusePost(w, r, m, wait, cfg.MaxBody, fail)
			return
		}
		if err := parseForm(w, r, cfg.MaxBody); err != nil {
			status, reason, metric := bodyProblem(err, "The message is far too long to send.")
			m.rejected(metric)
			if !clientLeft(r) {
				fail(status, reason, "")
				return
			}
			// The connection failed mid-body (cut short, or too slow), and
			// net/http cancelled the request's context: no history can be
			// read for a room page, so the answer is the form, or a short
			// page, for a client that may still be reading.
			w.Header().Set("Connection", "close")
			r = r.WithContext(context.WithoutCancel(r.Context())) // templ renders nothing for a done context
			if htmx {
				render(w, r, status, views.MessageForm(room, views.FormState{Problem: reason}))
				return
			}
			renderError(w, r, status, "Message not sent", reason)
			return
		}
		text := r.PostForm.Get("message")
		if _, err := hub.Post(r.Context(), room, PersonFrom(r.Context()).Author(), text); err != nil {
			if clientLeft(r) {
				// The poster left (the message may or may not be stored, as
				// any unanswered post): no one to answer, no store fault.
				logFailure(logger, r, slog.LevelError, "post", slog.String("room", room), slog.Any("err", err))
				return
			}
			status := statusOf(err)
			if status >= 500 {
				m.StoreErrors.WithLabelValues("append").Inc()
				logger.LogAttrs(r.Context(), slog.LevelError, "post", slog.String("room", room), slog.Any("err", err))
			} else {
				m.rejected("bad_message")
			}
			fail(status, publicReason(err), text)
			return
		}
		m.Posted.Inc()
		if htmx {
			render(w, r, http.StatusOK, views.MessageForm(room, views.FormState{}))
			return
		}
		http.Redirect(w, r, views.RoomURL(room), http.StatusSeeOther)
	}
}
