package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/hxchat/hxchat/chat"
)

// statusOf is the one place that maps an error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, chat.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, chat.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, chat.ErrNotAuthor):
		return http.StatusForbidden
	case errors.Is(err, chat.ErrClosed), errors.Is(err, chat.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// publicReason is what a user is told about err: the rule it broke for bad
// input, and nothing internal otherwise.
func publicReason(err error) string {
	switch statusOf(err) {
	case http.StatusBadRequest:
		return chat.Reason(err)
	case http.StatusServiceUnavailable:
		return "The chat is unavailable right now; please try again shortly. Nothing was sent."
	default:
		return "Something went wrong on our side; your message was not sent."
	}
}

// retryAfterSeconds is what a 503 tells clients to wait before retrying.
const retryAfterSeconds = "2"
