package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/hxchat/hxchat/chat"
	"github.com/hxchat/hxchat/views"
)

var errNoPerson = errors.New("no person in the request: the route lacks identify")

// nameState is what the name form shows to the person making r.
func nameState(r *http.Request) views.NameState {
	p := PersonFrom(r.Context())
	return views.NameState{Display: p.DisplayName(), Value: p.Name}
}

// localPath returns next if it is a path on this site ("/…", but not
// "//host…" or "/\host…", which browsers take for another site), and "/"
// otherwise, so the name form cannot be used to send people elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\") {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f {
			return "/" // browsers drop tabs and newlines, which could make "//"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// roomOfPath returns the room whose page is at path ("/chat/NAME/"), if any.
func roomOfPath(path string) (string, bool) {
	u, err := url.Parse(path)
	if err != nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), "/chat/")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, "/")
	if !ok || strings.Contains(rest, "/") {
		return "", false
	}
	room, err := url.PathUnescape(rest)
	if err != nil || chat.ValidateRoom(room) != nil {
		return "", false
	}
	return room, true
}

// handleName sets the display name of the person posting the name form
// (form fields name and next): a good name re-issues their cookie with it
// and redirects to next (a local path; anything else is "/"); an empty one
// goes back to the guest name. A bad name gets 400 and the page the form
// was on (the index, or the room page next names) with the reason next to
// the field; nothing changes.
func handleName(logger *slog.Logger, hub Hub, m *Metrics, cfg Config, secret []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := parseForm(w, r, cfg.MaxBody)
		next := localPath(r.PostForm.Get("next"))
		refuse := func(status int, value, reason string) {
			ns := nameState(r)
			ns.Value, ns.Problem = strings.ToValidUTF8(value, "\uFFFD"), reason
			if room, ok := roomOfPath(next); ok {
				renderRoomWith(w, r, logger, hub, cfg.History, room, status, views.FormState{}, ns)
				return
			}
			render(w, r, status, views.Index("", "", ns, roomsState(r, logger, hub)))
		}
		if err != nil {
			status, reason, metric := bodyProblem(err, "The name is far too long.")
			m.rejected(metric)
			if !clientLeft(r) {
				refuse(status, "", reason)
				return
			}
			// Cut short or too slow: net/http cancelled the request's
			// context, so no page that reads the store can be made.
			w.Header().Set("Connection", "close")
			r = r.WithContext(context.WithoutCancel(r.Context())) // templ renders nothing for a done context
			renderError(w, r, status, "Name not changed", reason)
			return
		}
		value := r.PostForm.Get("name")
		name := ""
		if strings.TrimSpace(value) != "" { // blank: back to the guest name
			if name, err = chat.NormalizeChosenName(value); err != nil {
				refuse(statusOf(err), value, chat.Reason(err))
				return
			}
		}
		if err := setName(w, r, secret, name); err != nil {
			logger.LogAttrs(r.Context(), slog.LevelError, "set name", slog.Any("err", err))
			renderError(w, r, http.StatusInternalServerError, "Internal error", "Something went wrong on our side; your name was not changed.")
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

// keyPattern is what a Person.Key looks like.
var keyPattern = regexp.MustCompile(`^[0-9a-f]{12}$`)

// handleMeCSS serves the stylesheet of the person asking: it marks the
// messages carrying their key as their own. It is private to them and never
// cached, so a shared cache cannot hand it to someone else.
func handleMeCSS() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/css; charset=utf-8")
		h.Set("Cache-Control", "private, no-store")
		key := PersonFrom(r.Context()).Key
		if !keyPattern.MatchString(key) {
			// Cannot happen behind identify; an empty sheet is harmless.
			_, _ = fmt.Fprint(w, "/* no person */\n")
			return
		}
		// The key is 12 hex digits (checked above), safe inside the quotes.
		// app.css draws own messages from these three hooks: an accent bar,
		// a tinted background and "(you)" after the name; and shows the
		// delete control where --delete is set.
		_, _ = fmt.Fprintf(w, "/* Your own messages. */\n"+
			`.msg[data-author="%s"] { --own-edge: var(--accent); --own-bg: var(--mine); --own-label: " (you)"; --delete: inline-block; }`+"\n", key)
		if isOperator(r) {
			_, _ = fmt.Fprint(w, "/* You are an operator: you may delete any message. */\n.msg { --delete: inline-block; }\n")
		}
	}
}
