package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

// Deleter erases messages.
type Deleter interface {
	Delete(ctx context.Context, room string, seq int64, who chat.Author, operator bool) (chat.Message, error)
}

// seqParam returns the message seq of the URL path (see parseSeq).
func seqParam(r *http.Request) (int64, bool) {
	return parseSeq(chi.URLParam(r, "seq"))
}

// parseSeq reads a message seq a client sent: a positive decimal number
// of at most 18 digits (so it fits an int64), nothing else.
func parseSeq(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// handleDelete deletes message {seq} of {room} for its author, or for an
// operator: an htmx request gets 200 and the placeholder that replaces
// the message; a plain form post a 303 back to the room. Every open stream
// replaces the message too, through the deletion record. Anyone else gets
// 403, a seq the room does not hold 404, a malformed one 400; an htmx
// request gets the reason in the page's notice line. Deleting a message
// already deleted succeeds (nothing more happens). The log says who
// deleted what: key, room, seq; never the text. Deletions count against
// the client's post rate (limit): each stores a record; over it, 429.
func handleDelete(logger *slog.Logger, hub Deleter, m *Metrics, limit *postLimiter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		htmx := r.Header.Get("HX-Request") == "true"
		fail := func(status int, title, reason string) {
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", retryAfterSeconds)
			}
			if htmx {
				// Only a partial: the message itself stays as it is.
				render(w, r, status, views.Notice(reason))
				return
			}
			renderError(w, r, status, title, reason)
		}
		room, err := roomParam(r)
		if err != nil {
			m.rejected("bad_room")
			fail(statusOf(err), "Bad room name", chat.Reason(err))
			return
		}
		seq, ok := seqParam(r)
		if !ok {
			m.rejected("bad_seq")
			fail(http.StatusBadRequest, "No such message", "That is not a message number.")
			return
		}
		if ok, wait := limit.allow(clientOf(r)); !ok {
			m.rejected("rate")
			w.Header().Set("Retry-After", retryAfter(wait))
			fail(http.StatusTooManyRequests, "Too fast", "You are deleting too fast; wait a moment and try again.")
			return
		}
		who, op := PersonFrom(r.Context()), isOperator(r)
		rec, err := hub.Delete(r.Context(), room, seq, who.Author(), op)
		switch {
		case errors.Is(err, chat.ErrAlreadyDeleted):
			// Someone (or another tab) was first: the message is gone, as
			// asked.
		case err != nil:
			status := statusOf(err)
			if status >= 500 {
				if !clientLeft(r) {
					m.StoreErrors.WithLabelValues("delete").Inc()
				}
				logFailure(logger, r, slog.LevelError, "delete", slog.String("room", room), slog.Int64("seq", seq), slog.Any("err", err))
			} else {
				m.rejected("delete_" + strconv.Itoa(status))
			}
			fail(status, "Message not deleted", deleteReason(err))
			return
		default:
			m.Deleted.Inc()
			logger.LogAttrs(r.Context(), slog.LevelInfo, "message deleted",
				slog.String("key", who.Key), slog.Bool("operator", op), slog.String("room", room),
				slog.Int64("seq", seq), slog.Int64("record", rec.Seq))
		}
		if htmx {
			render(w, r, http.StatusOK, views.DeletedMessage(seq))
			return
		}
		http.Redirect(w, r, views.RoomURL(room), http.StatusSeeOther)
	}
}

// deleteReason is what a person is told about a refused deletion.
func deleteReason(err error) string {
	switch {
	case errors.Is(err, chat.ErrNotAuthor):
		return "You can delete only your own messages."
	case errors.Is(err, chat.ErrNotFound):
		return "There is no such message in this room; it may no longer be kept."
	case statusOf(err) == http.StatusServiceUnavailable:
		return "The chat is unavailable right now; please try again shortly. Nothing was deleted."
	case statusOf(err) == http.StatusBadRequest:
		return chat.Reason(err)
	default:
		return "Something went wrong on our side; the message was not deleted."
	}
}
