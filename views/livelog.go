package views

import (
	"bytes"
	"context"
	"io"

	"github.com/a-h/templ"

	"github.com/hxchat/hxchat/chat"
)

// The live log's parts, written one after the other on one response: the
// opening (head, and the list with the recent messages, left open), then
// each new message's fragment (the same <li> the SSE stream sends), and
// the end. A template must close what it opens, so the open tags are
// written here.
const (
	liveLogStart = "<!DOCTYPE html>\n<html lang=\"en\">\n"
	liveLogBody  = "<body class=\"frame\"><div class=\"log-scroll\"><ul class=\"log\" aria-live=\"polite\" aria-label=\"Messages\">\n"
	liveLogClose = "</ul></div>\n"
	liveLogTail  = "</body>\n</html>\n"
)

// LiveLogOpen renders the start of room's live log: the head, then the
// list with history (and "Load earlier messages" when earlier > 0), open
// for what follows.
func LiveLogOpen(room string, history []chat.Message, earlier int64) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(liveLogStart)
	if err := logHead(room).Render(context.Background(), &b); err != nil {
		return nil, err
	}
	b.WriteString(liveLogBody)
	if err := LogItems(room, history, earlier, false).Render(context.Background(), &b); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// LiveLogEnd renders the end of a live log: the list closed, and the
// refresh element that loads the document again after seconds.
func LiveLogEnd(seconds int) []byte {
	var b bytes.Buffer
	b.WriteString(liveLogClose)
	_ = logEnd(seconds).Render(context.Background(), &b) // a fixed template of a number
	b.WriteString(liveLogTail)
	return b.Bytes()
}

// LiveLogRefused renders a whole live log document for a request that
// cannot be served now: the reason, and the refresh element that tries
// again after seconds.
func LiveLogRefused(room, reason string, seconds int) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		if _, err := io.WriteString(w, liveLogStart); err != nil {
			return err
		}
		if err := logHead(room).Render(ctx, w); err != nil {
			return err
		}
		if err := logRefused(reason, seconds).Render(ctx, w); err != nil {
			return err
		}
		_, err := io.WriteString(w, "</html>\n")
		return err
	})
}
