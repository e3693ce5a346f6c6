package handlers

// What a stream says before its messages, and what a stream request that
// cannot be served now gets instead. htmx 4's hx-sse keeps reconnecting
// only once it has received a stream: a first connect answered 503 is never
// retried, and the tab stays dead. It also takes the server's retry: only
// from a block that has data: or event: too. So a refused stream is a short
// but real event stream, and every stream's first block pairs retry: with
// data (an htmx partial for #stream-status; see views/stream.templ).
//
// Neither block has an id: field, so the browser's Last-Event-ID stays what
// it was and the next connect resumes from the same cursor.

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"

	"github.com/hxchat/hxchat/views"
)

// refuseJitter is the most a refused stream's retry is stretched, as a
// fraction of it: a crowd refused at once comes back spread over that
// much more time instead of together.
const refuseJitter = 0.5

// minRefuseRetry is the least retry a refusal advertises, so a
// misconfigured zero never makes a refused crowd hammer the server.
const minRefuseRetry = time.Second

// refuseStream answers a stream request that cannot be served now (a
// stream limit, draining, the store unreachable) so that htmx keeps trying:
// 200 with the stream headers and Retry-After, then one SSE block with
// retry: (retry plus up to half again, at least minRefuseRetry) and the
// reason for the person as data, and the end of the response. It writes
// the whole answer; the caller writes nothing more.
func refuseStream(w http.ResponseWriter, retry time.Duration, reason string) {
	retry = refuseWait(retry).Truncate(time.Millisecond) // as sent: retry: counts whole milliseconds
	h := w.Header()
	streamHeaders(h)
	h.Set("Retry-After", retryAfter(retry))
	// Rendering text into a fixed template does not fail; if it ever did,
	// the block would still carry the retry (sseBlock adds an empty data:).
	body, _ := views.Render(views.StreamNotice(reason))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(sseBlock(retry, body))
	// Flushed before the handler returns, so net/http does not add a
	// Content-Length: an event stream never has one (DESIGN.md).
	_ = http.NewResponseController(w).Flush()
}

// refuseWait is how long a refused stream, or a refused or ended live
// log, waits before it tries again: retry (at least minRefuseRetry)
// stretched by up to refuseJitter, so a crowd spreads out.
func refuseWait(retry time.Duration) time.Duration {
	retry = max(retry, minRefuseRetry)
	return retry + time.Duration(rand.Int64N(int64(float64(retry)*refuseJitter)+1))
}

// streamOpening is the first block every admitted stream writes: retry:
// with data that empties #stream-status (views.StreamLive), so htmx honours
// the retry and a tab that was refused before loses its notice. It has no
// id, so it leaves Last-Event-ID alone.
func streamOpening(retry time.Duration) []byte {
	return sseBlock(retry, liveData)
}

// liveData is views.StreamLive rendered once: it never changes.
var liveData = mustRender(views.StreamLive())

func mustRender(c templ.Component) []byte {
	b, err := views.Render(c)
	if err != nil {
		panic(err)
	}
	return b
}

// sseBlock frames one SSE block: "retry: MS", then each line of data (LF
// separated, as views.Render makes it) as its own "data: " line, then the
// blank line that ends the block. Without data, an empty data: line keeps
// the retry in a block htmx honours.
func sseBlock(retry time.Duration, data []byte) []byte {
	b := make([]byte, 0, len(data)+64)
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, retry.Milliseconds(), 10)
	b = append(b, '\n')
	if len(data) == 0 {
		b = append(b, "data:\n"...)
	}
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
		data = rest
	}
	return append(b, '\n')
}
