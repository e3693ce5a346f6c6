// Package views renders hxchat's pages and fragments with templ.
package views

import (
	"net/url"
	"strconv"
)

// RoomURL is the path of a room's page.
func RoomURL(room string) string { return "/chat/" + url.PathEscape(room) + "/" }

// PostURL is where a room's message form posts.
func PostURL(room string) string { return RoomURL(room) + "messages" }

// EventsURL is the room's SSE stream, resuming after seq.
func EventsURL(room string, after int64) string {
	return RoomURL(room) + "events?after=" + strconv.FormatInt(after, 10)
}

// MessageID is the element id of a message in the log; the log upserts on it
// so a message delivered twice is shown once.
func MessageID(seq int64) string { return "msg-" + strconv.FormatInt(seq, 10) }

// LogURL is the room's live log, a document the server keeps extending,
// for browsers without JavaScript.
func LogURL(room string) string { return RoomURL(room) + "log" }

// BeforeURL is the page of a room's history before seq (scroll back).
func BeforeURL(room string, seq int64) string {
	return RoomURL(room) + "?before=" + strconv.FormatInt(seq, 10)
}

// DeleteURL is where a message's delete control posts.
func DeleteURL(room string, seq int64) string {
	return RoomURL(room) + "messages/" + strconv.FormatInt(seq, 10) + "/delete"
}

// EarlierID is the element id of the log's first item, "Load earlier
// messages" (or the note that the history starts there): it sorts before
// every msg-SEQ in the upserted log, and a page loaded by it replaces it.
const EarlierID = "earlier"

// Admin paths: the operator's page, and where its forms post.
const (
	AdminURL       = "/admin"
	AdminLoginURL  = "/admin/login"
	AdminLogoutURL = "/admin/logout"
)
