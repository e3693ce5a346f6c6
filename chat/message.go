// Package chat is the core of hxchat: messages, room-name and message rules,
// the Store that keeps history, and the Hub that fans new messages out to the
// subscribers of a room. It knows nothing about HTTP.
package chat

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on names and message bodies, in characters (runes).
const (
	MaxRoomLen    = 64
	MaxMessageLen = 2000
	// MaxMarks is the most combining marks in a row on one character in a
	// name, room name or message. Real text needs a few (Vietnamese two,
	// Tibetan stacks up to about six); "zalgo" text stacks hundreds, which
	// draw over the messages above and below.
	MaxMarks = 8
)

// markPile returns the first combining mark in s that is more than MaxMarks
// in a row, or -1. Invisible characters and the other format characters
// that take no space (a zero width joiner, U+2060, U+034F, a variation
// selector, a bidi control…) between marks neither count nor end the row:
// the marks around them still pile on one character, so "a", eight
// accents, U+200D and eight more accents is a pile of sixteen.
func markPile(s string) rune {
	n := 0
	for _, r := range s {
		switch {
		case r < 0x80:
			n = 0 // ASCII has no marks and no format characters
		case unicode.IsMark(r):
			// U+034F and the variation selectors are marks, but draw
			// nothing: they neither count nor end the row either.
			if isInvisible(r) {
				continue
			}
			if n++; n > MaxMarks {
				return r
			}
		case n > 0 && !takesNoSpace(r):
			// A character that is drawn (a letter, a space, U+0600
			// ARABIC NUMBER SIGN…) starts a new row. Outside a row there
			// is nothing to end, so most text skips the look-ups.
			n = 0
		}
	}
	return -1
}

// takesNoSpace reports whether r is invisible or a format character that
// takes no space of its own: every format character (Cf) but the
// prepended concatenation marks (U+0600 ARABIC NUMBER SIGN…), which are
// drawn as wide as the digits they span.
func takesNoSpace(r rune) bool {
	return isInvisible(r) || unicode.Is(unicode.Cf, r) && !unicode.Is(unicode.Prepended_Concatenation_Mark, r)
}

// ErrInvalid marks input that breaks a rule; the error text says which rule,
// in words fit to show a user. Handlers map it to a 4xx status.
var ErrInvalid = errors.New("invalid input")

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("closed")

// Message is one chat message. Seq is its position in its room: 1, 2, 3…
// with no gaps, assigned by the Store when the message is appended. Epoch
// names the history the seq counts in: the store sets it, and it changes
// only when the room's history was lost (a new database, a flushed Redis),
// so a reader holding a cursor of another epoch knows its seqs mean
// nothing here. Author is the display name shown on it, AuthorKey the
// author's public key (see Author.Key; empty for messages stored before
// people had keys).
type Message struct {
	Room      string
	Seq       int64
	Epoch     string
	Author    string
	AuthorKey string
	Text      string
	Time      time.Time
	// Deleted is set on a message whose text was erased (Store.Delete):
	// Text is empty, and the message shows as a placeholder.
	Deleted bool
	// Deletes is set on a deletion record: the seq of the message it
	// erased. A record has a seq of its own in the room's order, so
	// followers replace the message live and exactly once; it is never
	// shown as a message, and its AuthorKey is who deleted.
	Deletes int64
}

// invalid wraps ErrInvalid with a reason a person can read.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Reason returns the human part of an ErrInvalid error ("room name is empty"),
// or the whole error text for other errors.
func Reason(err error) string {
	s := err.Error()
	if i := strings.Index(s, ErrInvalid.Error()+": "); i >= 0 {
		return s[i+len(ErrInvalid.Error())+2:]
	}
	return s
}

// ValidateRoom reports whether name is an acceptable room name: 1 to 64
// characters of valid UTF-8, each a Unicode letter or digit, one of '-',
// '_' and '.', or a combining mark that follows a letter, a digit or
// another mark (the vowel signs of Devanagari, Tamil, Bengali and Thai, the
// vowel marks of Arabic), and not "." or "..". The name must be in composed
// form (NFC), so "é" and "e"+U+0301 cannot be two rooms that look the same,
// and no character may carry more than MaxMarks combining marks. No
// character may be invisible, as for NormalizeName: the Hangul fillers
// U+115F, U+1160, U+3164 and U+FFA0 are letters, but a link made of them
// shows no text; the other Default_Ignorable_Code_Points (U+200B, U+FEFF,
// U+00AD, variation selectors, tag characters…) and U+2800 BRAILLE PATTERN
// BLANK are refused as invisible too. No character may be a compatibility
// form of another (one whose NFKD differs from its NFD: fullwidth "ｌ",
// mathematical "𝐥", the ligature "ﬁ", superscript "²", circled "ⓛ",
// halfwidth "ｶ", Roman numeral "Ⅻ"), which would list "ｌｏｂｂｙ" beside
// "lobby" as though it were that room; the exceptions are the letters
// their languages are typed with (see keptCompat: Hangul compatibility
// jamo such as "ㅎ", Thai "ำ"). And the letters must not mix scripts beyond
// UTS #39's "moderately restrictive" level, as for NormalizeName: one
// script; Latin with Han and Hiragana and Katakana, with Han and Bopomofo,
// or with Han and Hangul; or Latin and one other recommended script except
// Cyrillic and Greek (digits and "-_." of the Common script go with any).
// So "lobby", "team-7", "한국어", "हिंदी" and "日本語-chat" are room names;
// "Ελληνικά_日本語" and "ｌｏｂｂｙ" are not. The error wraps ErrInvalid and
// says what is wrong.
func ValidateRoom(name string) error {
	if name == "" {
		return invalid("room name is empty")
	}
	if !utf8.ValidString(name) {
		return invalid("room name is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxRoomLen {
		return invalid("room name is %d characters long; the limit is %d", n, MaxRoomLen)
	}
	if name == "." || name == ".." {
		return invalid("room name %q is reserved", name)
	}
	if r := markPile(name); r >= 0 {
		return invalid("room name has more than %d combining marks in a row (%U)", MaxMarks, r)
	}
	prev := rune(-1)
	for i, r := range name {
		switch {
		case isInvisible(r) && !isBidiControl(r):
			// Before letters: U+3164 is one. Bidi controls keep the
			// general reason below, which names them by escape ('\u202e').
			return invalid("room name contains an invisible character (%U)", r)
		case r >= 0x80 && isCompatForm(name[i:]) && !keptCompat(r):
			return compatReason(r)
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_', r == '.':
		case unicode.IsMark(r):
			// prev passed this loop, so it is a letter, a digit, a mark
			// or one of "-_.". A mark on nothing, or on punctuation, is
			// not part of the name's letters.
			if prev < 0 || prev == '-' || prev == '_' || prev == '.' {
				return invalid("room name contains %q (%U), a combining mark that does not follow a letter or digit", r, r)
			}
		case r == ' ':
			return invalid("room name contains a space; use letters, digits, '-', '_' or '.'")
		default:
			return invalid("room name contains %q; use letters, digits, '-', '_' or '.'", r)
		}
		prev = r
	}
	if !norm.NFC.IsNormalString(name) {
		// "é" as one character or as "e" and a combining accent look the
		// same: only the composed form names a room, so two rooms cannot.
		// After the characters are checked, so the composed name quotes
		// only letters, digits, marks and "-_."; but composing can make
		// a name longer (U+FB2C is three characters), so a long one is
		// left out of the reason.
		if c := norm.NFC.String(name); len(c) <= maxQuotedRoom {
			return invalid("room name is not in composed form (Unicode NFC); %q is the same name composed", c)
		}
		return invalid("room name is not in composed form (Unicode NFC)")
	}
	if scripts, r := scriptClash(name); scripts != nil {
		return invalid("room name mixes %s letters (%U); use letters of one script", scriptList(scripts), r)
	}
	return nil
}

// maxQuotedRoom is the longest composed room name, in bytes, that the
// reason for a decomposed one quotes: reasons stay a short sentence.
const maxQuotedRoom = 96

// compatReason explains why the compatibility form r is refused in a room
// name. Where its plain form could stand in its place ("l" for "ｌ", "2"
// for "²"), the reason names it; where it could not (a no-break space is a
// space, "⒧" is "(l)"), the reason is the general one.
func compatReason(r rune) error {
	plain := norm.NFKC.String(string(r))
	roomRune := func(c rune) bool {
		return unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.IsMark(c) || c == '-' || c == '_' || c == '.'
	}
	if !unicode.In(r, unicode.L, unicode.M, unicode.N) && strings.IndexFunc(plain, func(c rune) bool { return !roomRune(c) }) >= 0 {
		return invalid("room name contains %q; use letters, digits, '-', '_' or '.'", r)
	}
	what := "character"
	if utf8.RuneCountInString(plain) > 1 {
		what = "characters"
	}
	return invalid("room name contains %q (%U), a compatibility form of %q; use the plain %s", r, r, plain, what)
}

// NormalizeText trims surrounding white space from a message body, turns
// CRLF and lone CR into LF, and checks it: 1 to 2000 characters of valid
// UTF-8 without control characters other than newline and tab, and with at
// least one character that is neither white space nor invisible (a
// Default_Ignorable_Code_Point such as U+200B, U+200D, U+2060, U+FEFF, a
// variation selector or a tag character; a Hangul filler U+115F, U+1160,
// U+3164, U+FFA0; U+2800 BRAILLE PATTERN BLANK), so no stored message
// renders as nothing. Invisible characters next to visible ones stay: a zero
// width joiner holds emoji sequences together. The error wraps ErrInvalid
// and says what is wrong. No character may carry more than MaxMarks
// combining marks ("zalgo" text).
func NormalizeText(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", invalid("message is not valid UTF-8")
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	text = strings.TrimSpace(text)
	if text == "" {
		return "", invalid("message is empty")
	}
	if n := utf8.RuneCountInString(text); n > MaxMessageLen {
		return "", invalid("message is %d characters long; the limit is %d", n, MaxMessageLen)
	}
	if r := markPile(text); r >= 0 {
		return "", invalid("message has more than %d combining marks in a row (%U)", MaxMarks, r)
	}
	visible, firstInvisible := false, rune(-1)
	for _, r := range text {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return "", invalid("message contains a control character (%U)", r)
		}
		switch {
		case visible, unicode.IsSpace(r):
		case isInvisible(r):
			if firstInvisible < 0 {
				firstInvisible = r
			}
		default:
			visible = true
		}
	}
	if !visible {
		return "", invalid("message is blank: it has only invisible characters (%U) and white space", firstInvisible)
	}
	return text, nil
}
