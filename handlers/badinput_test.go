package handlers

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

// countingStore counts every Append, so a test can say that nothing at all
// was stored, in any room.
type countingStore struct {
	chat.Store
	appends atomic.Int64
}

func (s *countingStore) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	m, err := s.Store.Append(ctx, m)
	if err == nil {
		s.appends.Add(1)
	}
	return m, err
}

// Delete counts as an append: it stores a deletion record.
func (s *countingStore) Delete(ctx context.Context, d chat.Deletion) (chat.Message, error) {
	m, err := s.Store.Delete(ctx, d)
	if err == nil {
		s.appends.Add(1)
	}
	return m, err
}

// badRequest is one request of TestBadInput.
type badRequest struct {
	name   string
	method string // GET when empty
	target string // request target, sent exactly as written
	ctype  string // Content-Type; "-" for none; form-encoded when empty
	header map[string]string
	body   string
	// hugeHeader sends the request over a raw connection with a header
	// line of this many bytes.
	hugeHeader int
	// raw, if set, is sent verbatim over a raw connection instead (for
	// framing a client library would not send); method, target, ctype,
	// header and body are then ignored.
	raw string

	status int    // the status that must arrive
	alt    int    // another acceptable status (a proposed stricter answer), or 0
	reason string // words the (HTML-unescaped) body must contain; "" for HEAD
	allow  string // the Allow header a 405 must carry
	rooms  []string

	// stream marks a /events request with a bad cursor: not an error but
	// 200 and treated as no cursor (live from now on).
	stream bool
	// stores is what the request itself may store (the duplicate-field
	// case, which stores its first value).
	stores string
}

func formPost(target, body string) badRequest {
	return badRequest{method: http.MethodPost, target: target, body: body}
}

// TestBadInput sends bad requests through the full stack (a real HTTP
// server over newEnv) and checks that each gets a clear 4xx whose body says
// why, that nothing is stored in any room, and that the server stays
// healthy: /healthz answers 200 and a normal post still works. Malformed
// cursors are the documented exception: 200, treated as no cursor.
func TestBadInput(t *testing.T) {
	const post = "/chat/lobby/messages"
	long := strings.Repeat("a", chat.MaxRoomLen+1)
	with := func(r badRequest, f func(*badRequest)) badRequest { f(&r); return r }
	cases := []badRequest{
		// The message field.
		with(formPost(post, "message=a%00b"), func(r *badRequest) {
			r.name, r.status, r.reason = "NULInMessage", 400, "message contains a control character (U+0000)"
		}),
		with(formPost(post, "message=a%FFb"), func(r *badRequest) {
			r.name, r.status, r.reason = "InvalidUTF8", 400, "message is not valid UTF-8"
		}),
		with(formPost(post, "message=%C0%AF"), func(r *badRequest) {
			r.name, r.status, r.reason = "OverlongSlash", 400, "message is not valid UTF-8"
		}),
		with(formPost(post, "message=%E0%80%AE%E0%80%AE"), func(r *badRequest) {
			r.name, r.status, r.reason = "OverlongDots3Byte", 400, "message is not valid UTF-8"
		}),
		with(formPost(post, "message=%ED%A0%80"), func(r *badRequest) {
			r.name, r.status, r.reason = "SurrogateHalf", 400, "message is not valid UTF-8"
		}),
		with(formPost(post, "message=a%C2%85b"), func(r *badRequest) {
			r.name, r.status, r.reason = "C1Control", 400, "message contains a control character (U+0085)"
		}),
		with(formPost(post, "message=%1B%5B31m"), func(r *badRequest) {
			r.name, r.status, r.reason = "EscapeSequence", 400, "message contains a control character (U+001B)"
		}),
		with(formPost(post, messageForm(strings.Repeat("a", chat.MaxMessageLen+1))), func(r *badRequest) {
			r.name, r.status, r.reason = "TooLong2001", 400, "message is 2001 characters long; the limit is 2000"
		}),
		with(formPost(post, messageForm(" \t\r\n\u00a0\u3000 ")), func(r *badRequest) {
			r.name, r.status, r.reason = "WhitespaceOnly", 400, "message is empty"
		}),
		with(formPost(post, "other=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "MissingField", 400, "message is empty"
		}),
		with(formPost(post, ""), func(r *badRequest) {
			r.name, r.status, r.reason = "EmptyBody", 400, "message is empty"
		}),
		with(formPost(post+"?message=hello", ""), func(r *badRequest) {
			// Only the body counts: a message in the URL is ignored.
			r.name, r.status, r.reason = "MessageInQueryOnly", 400, "message is empty"
		}),
		with(formPost(post, "message=%ZZ"), func(r *badRequest) {
			r.name, r.status, r.reason = "BadPercentEncoding", 400, "The form could not be read."
		}),
		with(formPost(post, messageForm(strings.Repeat("a", 1<<20))), func(r *badRequest) {
			r.name, r.status, r.reason = "OneMegabyteBody", 413, "The message is far too long to send."
		}),
		with(formPost(post, `{"message":"hello"}`), func(r *badRequest) {
			// ParseForm reads only form bodies: a JSON body is an empty
			// form. 415 would say it better (see the report).
			r.name, r.ctype, r.status, r.alt, r.reason = "JSONBody", "application/json", 400, 415, "message is empty"
		}),
		with(formPost(post, "--X\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhello\r\n--X--\r\n"), func(r *badRequest) {
			r.name, r.ctype, r.status, r.alt, r.reason = "MultipartBody", "multipart/form-data; boundary=X", 400, 415, "message is empty"
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.ctype, r.status, r.alt, r.reason = "NoContentType", "-", 400, 415, "message is empty"
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.ctype, r.status, r.alt, r.reason = "TextPlain", "text/plain", 400, 415, "message is empty"
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			// net/http's server refuses a header block over MaxHeaderBytes
			// before any handler runs. httptest.NewServer uses the default,
			// http.DefaultMaxHeaderBytes (1 MiB, plus 4 KiB of slack);
			// cmd/hxchat sets 64 KiB. The answer is the same plain-text
			// "431 Request Header Fields Too Large", then the connection
			// is closed.
			r.name, r.hugeHeader, r.status, r.reason = "HugeHeader", http.DefaultMaxHeaderBytes+64<<10, 431, "Request Header Fields Too Large"
		}),

		// The room name in the path.
		with(formPost("/chat/a%E2%80%AEb/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "BidiOverrideRoom", 400, `room name contains '\u202e'`, []string{"a\u202eb"}
		}),
		with(formPost("/chat/%EF%BD%8C%EF%BD%8F%EF%BD%82%EF%BD%82%EF%BD%99/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "FullwidthLookAlikeRoom", 400, `room name contains 'ｌ' (U+FF4C), a compatibility form of "l"; use the plain character`, []string{"ｌｏｂｂｙ"}
		}),
		with(formPost("/chat/%F0%9D%90%A5%F0%9D%90%A8%F0%9D%90%9B%F0%9D%90%9B%F0%9D%90%B2/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "MathBoldLookAlikeRoom", 400, "a compatibility form of", []string{"𝐥𝐨𝐛𝐛𝐲"}
		}),
		with(formPost("/chat/../messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "DotDotRoom", 400, `room name ".." is reserved`, []string{".."}
		}),
		with(formPost("/chat/%2E%2E/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "EscapedDotDotRoom", 400, `room name ".." is reserved`, []string{".."}
		}),
		with(formPost("/chat/%2e%2e%2fetc/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "EscapedTraversalRoom", 400, `room name contains '/'`, []string{"../etc", "etc"}
		}),
		with(formPost("/chat/a%2Fb/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "EscapedSlashRoom", 400, `room name contains '/'`, []string{"a/b", "a", "b"}
		}),
		with(formPost("/chat//messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "EmptyRoom", 400, "room name is empty", []string{""}
		}),
		with(formPost("/chat/"+long+"/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "Room65Chars", 400, "room name is 65 characters long; the limit is 64", []string{long}
		}),
		with(formPost("/chat/a%01b/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "ControlCharRoom", 400, `room name contains '\x01'`, []string{"a\x01b"}
		}),
		with(formPost("/chat/a%00b/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "NULRoom", 400, `room name contains '\x00'`, []string{"a\x00b"}
		}),
		with(formPost("/chat/%FF/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "InvalidUTF8Room", 400, "room name is not valid UTF-8", []string{"\xff"}
		}),
		{name: "CrossSiteStream", target: "/chat/lobby/events", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403, reason: "Another site's page may not open this chat's streams."},
		{name: "EscapedDotDotRoomEvents", target: "/chat/%2E%2E/events", status: 400, reason: `room name ".." is reserved`},
		{name: "EscapedSlashRoomEvents", target: "/chat/a%2Fb/events?after=0", status: 400, reason: `room name contains '/'`},

		// Methods the messages URL does not serve.
		{name: "HeadMessages", method: http.MethodHead, target: post, status: 405, allow: "POST"},
		{name: "GetMessages", method: http.MethodGet, target: post, status: 405, reason: "GET is not allowed here.", allow: "POST"},
		{name: "PutMessages", method: http.MethodPut, target: post, body: "message=hello", status: 405, reason: "PUT is not allowed here.", allow: "POST"},
		{name: "DeleteMessages", method: http.MethodDelete, target: post, status: 405, reason: "DELETE is not allowed here.", allow: "POST"},
		{name: "PostEvents", method: http.MethodPost, target: "/chat/lobby/events", body: "message=hello", status: 405, reason: "POST is not allowed here.", allow: "GET, HEAD"},

		// Malformed cursors are not errors: 200, and the stream goes live
		// from now on as if there were no cursor.
		{name: "NegativeAfter", target: "/chat/lobby/events?after=-1", status: 200, stream: true},
		{name: "HugeAfter", target: "/chat/lobby/events?after=99999999999999999999", status: 200, stream: true},
		{name: "GarbageAfter", target: "/chat/lobby/events?after=%00abc", status: 200, stream: true},
		{name: "NegativeLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": "-5"}, status: 200, stream: true},
		{name: "HugeLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": "9223372036854775808"}, status: 200, stream: true},
		{name: "GarbageLastEventID", target: "/chat/lobby/events?after=x", header: map[string]string{"Last-Event-ID": "0x1 y"}, status: 200, stream: true},

		// Added by the adversarial pass of 2026-12-06: what a hostile
		// client sent that is refused today.

		// Messages that would draw over their neighbours or show nothing.
		with(formPost(post, messageForm("a"+strings.Repeat("\u0301", 300))), func(r *badRequest) {
			r.name, r.status, r.reason = "ZalgoMessage300Marks", 400, "message has more than 8 combining marks in a row (U+0301)"
		}),
		with(formPost(post, messageForm("a"+strings.Repeat("\u0301", chat.MaxMarks+1))), func(r *badRequest) {
			r.name, r.status, r.reason = "ZalgoMessage9Marks", 400, "message has more than 8 combining marks in a row (U+0301)"
		}),
		with(formPost(post, messageForm("a"+strings.Repeat(strings.Repeat("\u0301", 8)+"\u034f", 30))), func(r *badRequest) {
			// U+034F COMBINING GRAPHEME JOINER draws nothing: it neither
			// counts nor splits a pile.
			r.name, r.status, r.reason = "ZalgoSplitByCGJ", 400, "message has more than 8 combining marks in a row (U+0301)"
		}),
		with(formPost(post, messageForm("a"+strings.Repeat(strings.Repeat("\u0301", 8)+"\ufe0f", 30))), func(r *badRequest) {
			r.name, r.status, r.reason = "ZalgoSplitByVS16", 400, "message has more than 8 combining marks in a row (U+0301)"
		}),
		with(formPost(post, messageForm("a"+strings.Repeat(strings.Repeat("\u0301", 8)+"\u200d", 30))), func(r *badRequest) {
			r.name, r.status, r.reason = "ZalgoSplitByZWJ", 400, "message has more than 8 combining marks in a row (U+0301)"
		}),
		with(formPost(post, messageForm("\u200d\u200d \u200b")), func(r *badRequest) {
			r.name, r.status, r.reason = "OnlyZeroWidthJoiners", 400, "message is blank: it has only invisible characters (U+200D)"
		}),
		with(formPost(post, messageForm("\U000E0068\U000E0069")), func(r *badRequest) {
			// Tag characters spell hidden ASCII ("hi") and draw nothing.
			r.name, r.status, r.reason = "OnlyTagCharacters", 400, "message is blank: it has only invisible characters (U+E0068)"
		}),
		with(formPost(post, "message=a%7Fb"), func(r *badRequest) {
			r.name, r.status, r.reason = "DELInMessage", 400, "message contains a control character (U+007F)"
		}),
		with(formPost(post, "message=+++"), func(r *badRequest) {
			r.name, r.status, r.reason = "PlusEncodedSpacesOnly", 400, "message is empty"
		}),

		// Bodies that are not the form they claim to be.
		with(formPost(post, "\ufeffmessage=hello"), func(r *badRequest) {
			// A byte order mark makes the field "\ufeffmessage".
			r.name, r.status, r.reason = "BOMBeforeField", 400, "message is empty"
		}),
		with(formPost(post, "x=1;message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "SemicolonSeparator", 400, "The form could not be read."
		}),
		with(formPost(post, strings.Repeat("a&", 15000)+"message=hello"), func(r *badRequest) {
			// net/url refuses more than 10000 fields (GODEBUG
			// urlmaxqueryparams), well within -max-body.
			r.name, r.status, r.reason = "FifteenThousandFields", 400, "The form could not be read."
		}),
		with(formPost(post+"?"+strings.Repeat("a=1&", 14000), "message=hello"), func(r *badRequest) {
			// ParseForm reads the query too, and fails on it.
			r.name, r.status, r.reason = "FourteenThousandQueryFields", 400, "The form could not be read."
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.ctype, r.status, r.reason = "ContentTypeBadParams", "application/x-www-form-urlencoded; a=b; c", 400, "The form could not be read."
		}),
		with(formPost(post, gzipped("message=hello")), func(r *badRequest) {
			// A compressed body is not decoded: it is no form, and nothing
			// is stored (the reason depends on the compressed bytes).
			r.name, r.status = "GzipEncodedBody", 400
			r.header = map[string]string{"Content-Encoding": "gzip"}
		}),

		// Cross-site posts (CrossOriginProtection).
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "CrossSitePost", 403, "came from another site"
			r.header = map[string]string{"Sec-Fetch-Site": "cross-site"}
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "SameSiteNotSameOriginPost", 403, "came from another site"
			r.header = map[string]string{"Sec-Fetch-Site": "same-site"}
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "GarbageSecFetchSitePost", 403, "came from another site"
			r.header = map[string]string{"Sec-Fetch-Site": "garbage"}
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "ForeignOriginPost", 403, "came from another site"
			r.header = map[string]string{"Origin": "http://evil.example"}
		}),
		with(formPost(post, "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "NullOriginPost", 403, "came from another site"
			r.header = map[string]string{"Origin": "null"}
		}),
		with(formPost("/name", "name=Mallory&next=/"), func(r *badRequest) {
			r.name, r.status, r.reason = "CrossSiteName", 403, "came from another site"
			r.header = map[string]string{"Sec-Fetch-Site": "cross-site"}
		}),

		// Room names that look like another, or hide something.
		with(formPost("/chat/cafe%CC%81/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "NFDRoom", 400, "room name is not in composed form (Unicode NFC)", []string{"cafe\u0301", "caf\u00e9"}
		}),
		with(formPost("/chat/%E2%84%AB/messages", "message=hello"), func(r *badRequest) {
			// U+212B ANGSTROM SIGN, whose NFC is U+00C5.
			r.name, r.status, r.reason, r.rooms = "AngstromSignRoom", 400, "room name is not in composed form (Unicode NFC)", []string{"\u212b", "\u00c5"}
		}),
		with(formPost("/chat/"+url.PathEscape("a"+strings.Repeat("\u0301", chat.MaxMarks+1))+"/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "ZalgoRoom", 400, "room name has more than 8 combining marks in a row (U+0301)"
		}),
		with(formPost("/chat/%CC%81a/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason = "LeadingMarkRoom", 400, "room name contains '\u0301'"
		}),
		with(formPost("/chat/a%E2%80%8Db/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "ZeroWidthJoinerRoom", 400, "room name contains an invisible character (U+200D)", []string{"a\u200db", "ab"}
		}),
		with(formPost("/chat/l%D0%BEbby/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "MixedScriptRoom", 400, "room name mixes Latin and Cyrillic letters (U+043E)", []string{"l\u043ebby"}
		}),
		with(formPost("/chat/a%252Fb/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "DoubleEscapedSlashRoom", 400, "room name contains '%'", []string{"a%2Fb", "a/b"}
		}),
		with(formPost("/chat/a;b/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "SemicolonRoom", 400, "room name contains ';'", []string{"a;b", "a"}
		}),
		with(formPost("/chat/a%0Ab/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "NewlineRoom", 400, `room name contains '\n'`, []string{"a\nb"}
		}),
		with(formPost("/chat/a%5Cb/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "BackslashRoom", 400, `room name contains '\\'`, []string{`a\b`}
		}),
		with(formPost("/chat/%EF%BC%8E%EF%BC%8E/messages", "message=hello"), func(r *badRequest) {
			// FULLWIDTH FULL STOP twice: not "..", not a name.
			r.name, r.status, r.reason, r.rooms = "FullwidthDotDotRoom", 400, "room name contains '\uff0e'", []string{"\uff0e\uff0e", ".."}
		}),
		with(formPost("/chat/%C2%B2/messages", "message=hello"), func(r *badRequest) {
			r.name, r.status, r.reason, r.rooms = "SuperscriptDigitRoom", 400, "room name contains '\u00b2'", []string{"\u00b2", "2"}
		}),
		{name: "NFDRoomEvents", target: "/chat/cafe%CC%81/events", status: 400, reason: "room name is not in composed form (Unicode NFC)"},
		{name: "MixedScriptRoomEvents", target: "/chat/l%D0%BEbby/events?after=0", status: 400, reason: "room name mixes Latin and Cyrillic letters"},
		{name: "ZalgoRoomPage", target: "/chat/" + url.PathEscape("a"+strings.Repeat("\u0301", chat.MaxMarks+1)) + "/", status: 400, reason: "room name has more than 8 combining marks in a row"},
		{name: "SemicolonRoomQuery", target: "/chat/?room=a%3Bb", status: 400, reason: "room name contains ';'"},
		{name: "NoTrailingSlashRoom", target: "/chat/lobby", status: 404, reason: "There is no page at this address."},

		// Static files: no listing, no dot files, no way out of the
		// embedded tree, and a Range that is not one is refused.
		{name: "StaticListing", target: "/static/", status: 404, reason: "There is no file at this address."},
		{name: "StaticDotFile", target: "/static/dist/.gitkeep", status: 404, reason: "There is no file at this address."},
		{name: "StaticEscapedTraversal", target: "/static/%2e%2e/go.mod", status: 404, reason: "page not found"},
		{name: "StaticEscapedSlashTraversal", target: "/static/%2e%2e%2fgo.mod", status: 404, reason: "page not found"},
		{name: "StaticNUL", target: "/static/app.css%00.js", status: 404, reason: "page not found"},

		// More methods nobody serves.
		{name: "OptionsMessages", method: http.MethodOptions, target: post, status: 405, reason: "OPTIONS is not allowed here.", allow: "POST"},
		{name: "PatchMessages", method: http.MethodPatch, target: post, body: "message=hello", status: 405, reason: "PATCH is not allowed here.", allow: "POST"},
		{name: "LowercasePostMessages", method: "post", target: post, body: "message=hello", status: 405, reason: "post is not allowed here.", allow: "POST"},
		{name: "TraceIndex", method: http.MethodTrace, target: "/", status: 405, reason: "TRACE is not allowed here.", allow: "GET, HEAD"},
		{name: "HeadName", method: http.MethodHead, target: "/name", status: 405, allow: "POST"},
		{name: "OptionsEvents", method: http.MethodOptions, target: "/chat/lobby/events", status: 405, reason: "OPTIONS is not allowed here.", allow: "GET, HEAD"},

		// Framing a client library would not send: net/http refuses it
		// before any handler runs.
		{name: "TwoContentLengths", status: 400, reason: "Bad Request",
			raw: "POST " + post + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\nContent-Length: 14\r\n\r\nmessage=hello"},
		{name: "NegativeContentLength", status: 400, reason: "Bad Request",
			raw: "POST " + post + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: -13\r\n\r\nmessage=hello"},
		{name: "NULInHeader", status: 400, reason: "Bad Request",
			raw: "POST " + post + " HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nmessage=hello"},
		{name: "MissingHost", status: 400, reason: "missing required Host header",
			raw: "POST " + post + " HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nmessage=hello"},
		{name: "MalformedHost", status: 400, reason: "malformed Host header",
			raw: "POST " + post + " HTTP/1.1\r\nHost: a b<>\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nmessage=hello"},
		{name: "UnknownExpectation", status: 417,
			raw: "POST " + post + " HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\n\r\nmessage=hello"},

		// More malformed cursors: 200, treated as none.
		{name: "PlusSignLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": "+1"}, status: 200, stream: true},
		{name: "UppercaseEpochLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": "1-ABCDEF12"}, status: 200, stream: true},
		{name: "TrailingDashLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": "1-"}, status: 200, stream: true},
		{name: "ListLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": "1,2"}, status: 200, stream: true},
		{name: "GiantLastEventID", target: "/chat/lobby/events", header: map[string]string{"Last-Event-ID": strings.Repeat("9", 60000)}, status: 200, stream: true},
		{name: "InvalidUTF8EpochAfter", target: "/chat/lobby/events?after=1-%FF", status: 200, stream: true},

		// Deletion, scroll back and operators.
		{name: "DeleteUnknownSeq", method: http.MethodPost, target: "/chat/lobby/messages/1/delete", status: 404, reason: "There is no such message in this room"},
		{name: "DeleteWordSeq", method: http.MethodPost, target: "/chat/lobby/messages/x/delete", status: 400, reason: "That is not a message number."},
		{name: "DeleteHugeSeq", method: http.MethodPost, target: "/chat/lobby/messages/99999999999999999999/delete", status: 400, reason: "That is not a message number."},
		{name: "DeleteBadRoom", method: http.MethodPost, target: "/chat/%2E%2E/messages/1/delete", status: 400, reason: `room name ".." is reserved`},
		{name: "GetDelete", target: "/chat/lobby/messages/1/delete", status: 405, reason: "GET is not allowed here.", allow: "POST"},
		{name: "DeleteCrossSite", method: http.MethodPost, target: "/chat/lobby/messages/1/delete", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403, reason: "This request came from another site"},
		{name: "BeforeWord", target: "/chat/lobby/?before=abc", status: 400, reason: "?before= takes a message number"},
		{name: "BeforeZero", target: "/chat/lobby/?before=0", status: 400, reason: "?before= takes a message number"},
		{name: "BeforeNegative", target: "/chat/lobby/?before=-1", status: 400, reason: "?before= takes a message number"},
		{name: "BeforeEmpty", target: "/chat/lobby/?before=", status: 400, reason: "?before= takes a message number"},
		{name: "BeforeTwice", target: "/chat/lobby/?before=1&before=2", status: 400, reason: "?before= takes a message number"},
		{name: "BeforeHuge", target: "/chat/lobby/?before=99999999999999999999", status: 400, reason: "?before= takes a message number"},
		{name: "AdminLoginNoOperators", method: http.MethodPost, target: "/admin/login", body: "token=x", status: 404, reason: "Operators are not enabled on this server."},
		{name: "GetAdminLogin", target: "/admin/login", status: 405, reason: "GET is not allowed here.", allow: "POST"},
		{name: "AdminLoginCrossSite", method: http.MethodPost, target: "/admin/login", body: "token=x", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403, reason: "This request came from another site"},

		// Duplicate fields are not refused today: PostForm.Get takes the
		// first value. Pinned here; refusing them is a proposed change.
		with(formPost(post, "message=first&message=second"), func(r *badRequest) {
			r.name, r.status, r.stores = "DuplicateMessageFields", http.StatusSeeOther, "first"
		}),
	}
	if n := len(cases); n < 20 {
		t.Fatalf("%d cases, want at least 20", n)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var cs *countingStore
			e := newEnv(t, func(o *envOptions) {
				o.store = func(m *chat.MemoryStore) chat.Store {
					cs = &countingStore{Store: m}
					return cs
				}
			})
			ts := e.serve(t)
			if c.stream {
				checkIgnoredCursor(t, e, cs, ts, c)
			} else {
				checkRefused(t, e, cs, ts, c)
			}
			stored := cs.appends.Load()

			// Still healthy: /healthz, then a normal post.
			resp, body := send(t, ts, http.MethodGet, "/healthz", "", nil, "")
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("after the request: /healthz %d %q, want 200 ok", resp.StatusCode, body)
			}
			postHTTP(t, ts, "lobby", "still works")
			if got, want := cs.appends.Load(), stored+1; got != want {
				t.Errorf("after a normal post: %d appends, want %d", got, want)
			}
			if msgs := e.recent(t, "lobby", 1); len(msgs) != 1 || msgs[0].Text != "still works" {
				t.Errorf("after a normal post: newest in lobby %+v, want \"still works\"", msgs)
			}
		})
	}
}

// checkRefused sends c and checks its status, reason and Allow header,
// and that it stored nothing (or only c.stores).
func checkRefused(t *testing.T, e *testEnv, cs *countingStore, ts *httptest.Server, c badRequest) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	var (
		resp *http.Response
		body string
	)
	if c.raw != "" {
		resp, body = sendRaw(t, ts, c.raw)
	} else if c.hugeHeader > 0 {
		resp, body = sendHugeHeader(t, ts, c)
	} else {
		ctype := c.ctype
		switch ctype {
		case "":
			ctype = "application/x-www-form-urlencoded"
		case "-":
			ctype = ""
		}
		resp, body = send(t, ts, method, c.target, c.body, c.header, ctype)
	}
	if got := resp.StatusCode; got != c.status && (c.alt == 0 || got != c.alt) {
		t.Errorf("status %d, want %d; body %.300q", got, c.status, body)
	}
	if c.stores == "" && (resp.StatusCode < 400 || resp.StatusCode > 499) {
		t.Errorf("status %d is not a 4xx", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q on a refusal", ct)
	}
	if c.reason != "" && !strings.Contains(html.UnescapeString(body), c.reason) {
		t.Errorf("body does not say %q: %.500q", c.reason, body)
	}
	if c.allow != "" {
		// RFC 9110, 15.5.6: a 405 MUST carry Allow with the methods the
		// resource supports.
		if got := strings.Join(resp.Header.Values("Allow"), ", "); got != c.allow {
			t.Errorf("405 with Allow %q, want %q", got, c.allow)
		}
	}

	want := int64(0)
	if c.stores != "" {
		want = 1
		if msgs := e.recent(t, "lobby", 10); len(msgs) != 1 || msgs[0].Text != c.stores {
			t.Errorf("lobby holds %+v, want one message %q", msgs, c.stores)
		}
	}
	if got := cs.appends.Load(); got != want {
		t.Errorf("%d messages stored, want %d", got, want)
	}
	for _, room := range append([]string{"lobby"}, c.rooms...) {
		if c.stores != "" && room == "lobby" {
			continue
		}
		if msgs := e.recent(t, room, 10); len(msgs) != 0 {
			t.Errorf("room %q holds %+v, want nothing", room, msgs)
		}
	}
}

// checkIgnoredCursor opens the stream of c with two messages stored and
// checks that the malformed cursor counted as none: a 200 stream that
// replays nothing and goes live from now on.
func checkIgnoredCursor(t *testing.T, e *testEnv, cs *countingStore, ts *httptest.Server, c badRequest) {
	t.Helper()
	e.post(t, "lobby", "one")
	e.post(t, "lobby", "two")
	hdr := http.Header{}
	for k, v := range c.header {
		hdr.Set(k, v)
	}
	rd := openOK(t, ts, c.target, hdr) // 200, and subscribed
	if got := cs.appends.Load(); got != 2 {
		t.Errorf("opening the stream stored something: %d appends, want 2", got)
	}
	postHTTP(t, ts, "lobby", "after connect")
	ev := rd.nextMessage(t)
	if ev.ID != "3" {
		t.Errorf("first event id %q, want 3 (no replay, no snapshot): %q", ev.ID, ev.Lines)
	}
	if !strings.Contains(ev.data(), "after connect") {
		t.Errorf("first event %q, want the message posted after connecting", ev.data())
	}
}

// send sends one request to ts, bounded by streamWait, and returns the
// response with its body read. Redirects are not followed.
func send(t *testing.T, ts *httptest.Server, method, target, body string, header map[string]string, ctype string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), streamWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := *ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return resp, string(b)
}

// sendHugeHeader sends c with an X-Padding header line of c.hugeHeader
// bytes over a raw connection (http.Client would send it too, but a raw
// connection shows exactly what the server answers while the client is
// still writing).
func sendHugeHeader(t *testing.T, ts *httptest.Server, c badRequest) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(streamWait))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nX-Padding: %s\r\n\r\n%s",
		c.method, c.target, ts.Listener.Addr(), len(c.body), strings.Repeat("a", c.hugeHeader), c.body)
	// The server answers as soon as it has read past its limit, before
	// the rest is written; the write's own error does not matter.
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to a %d-byte header: %v", c.hugeHeader, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// sendRaw writes raw to a new connection to ts and reads one response.
func sendRaw(t *testing.T, ts *httptest.Server, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(streamWait))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.80q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// gzipped returns s compressed with gzip.
func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = io.WriteString(zw, s)
	_ = zw.Close()
	return b.String()
}

// TestPostLongestMessage posts the longest message DESIGN.md allows, 2000
// characters, in scripts whose characters take 1 to 4 bytes, with the
// default body limit (newEnv mirrors -max-body): every one must be stored.
// Form-encoded, a 4-byte character takes 12 bytes, so the limit must be at
// least 2000*12 plus the field name.
func TestPostLongestMessage(t *testing.T) {
	for _, tt := range []struct{ name, char string }{
		{"ASCII", "a"},
		{"Latin", "é"},
		{"Korean", "한"},
		{"Emoji", "🙂"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			text := strings.Repeat(tt.char, chat.MaxMessageLen)
			w := e.do(postRequest("lobby", messageForm(text), true))
			if w.Code != http.StatusOK {
				reason, _ := messageError(w.Body.String())
				t.Fatalf("2000 × %q (%d bytes form-encoded): status %d (%q), want 200", tt.char, len(messageForm(text)), w.Code, reason)
			}
			if msgs := e.recent(t, "lobby", 1); len(msgs) != 1 || msgs[0].Text != text {
				t.Errorf("stored %d messages, want the 2000-character one", len(msgs))
			}
		})
	}
}
