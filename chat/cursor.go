package chat

import (
	crand "crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
)

// Cursor is a point in a room's history: the epoch of the history and the
// newest seq a reader has. Its text form, the SSE event id a browser
// resumes from, is "SEQ-EPOCH" ("42-9f3a61c0"), or "SEQ" alone when the
// epoch is unknown (an empty room, or a legacy ?after=SEQ).
type Cursor struct {
	Epoch string
	Seq   int64
}

// MaxEpochLen bounds an epoch's length in a cursor read from a client.
const MaxEpochLen = 16

// NewEpoch returns a fresh random epoch: 8 lower-case hex digits. Two
// histories of one room that get the same epoch by chance (1 in 2³²) would
// not be told apart, which only costs a reader the reset it should have had.
func NewEpoch() string {
	var b [4]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AppendText appends c's text form to b.
func (c Cursor) AppendText(b []byte) []byte {
	b = strconv.AppendInt(b, c.Seq, 10)
	if c.Epoch != "" {
		b = append(b, '-')
		b = append(b, c.Epoch...)
	}
	return b
}

// String returns c's text form.
func (c Cursor) String() string { return string(c.AppendText(nil)) }

// ParseCursor reads a cursor's text form: a non-negative decimal seq,
// optionally followed by "-" and an epoch of 1 to MaxEpochLen lower-case
// letters and digits. Anything else is not a cursor (ok is false).
func ParseCursor(s string) (c Cursor, ok bool) {
	seq, epoch, hasEpoch := strings.Cut(s, "-")
	if seq == "" || strings.IndexFunc(seq, notDigit) >= 0 {
		return Cursor{}, false
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		return Cursor{}, false
	}
	if hasEpoch && !ValidEpoch(epoch) {
		return Cursor{}, false
	}
	return Cursor{Epoch: epoch, Seq: n}, true
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// ValidEpoch reports whether e is an epoch a cursor may carry: 1 to
// MaxEpochLen lower-case ASCII letters and digits.
func ValidEpoch(e string) bool {
	if e == "" || len(e) > MaxEpochLen {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
