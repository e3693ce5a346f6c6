package chat

import (
	"context"
	"crypto/rand"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest display name, in characters (runes).
const MaxNameLen = 32

// MaxAuthorKeyLen bounds Author.Key, in bytes.
const MaxAuthorKeyLen = 64

// Author is who posts a message: the display name shown on it and a public
// key that stays the same for one person across names and visits. Key is
// lower-case hex (or empty, for messages without a known author); it tells
// a person's own messages apart without revealing who they are.
type Author struct {
	Name string
	Key  string
}

// NormalizeName trims surrounding white space from a display name, turns
// every run of spaces inside it into one space, and checks it: 1 to 32
// characters of valid UTF-8, each a Unicode letter (with any combining
// marks that follow it) or digit, a space, or one of '-', '_' and '.'. So
// "Ann", "Jo-Ann O." and "김민수" are names; "<b>", tabs, control and bidi
// characters and emoji are not. The error wraps ErrInvalid and says what is
// wrong.
func NormalizeName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("name is not valid UTF-8")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("name is empty")
	}
	var b strings.Builder
	b.Grow(len(s))
	n := 0
	prev := rune(-1)
	for _, r := range s {
		if unicode.Is(unicode.Zs, r) {
			// Any space separator (U+3000 from a CJK keyboard, a no-break
			// space from a paste) is a space; a run of them is one.
			if prev == ' ' {
				continue
			}
			r = ' '
		}
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == ' ', r == '-', r == '_', r == '.':
		case unicode.IsMark(r):
			// Many scripts need combining marks (Devanagari vowel signs,
			// a decomposed "ë"); a mark on anything but a letter is not
			// part of a name.
			if prev < 0 || !(unicode.IsLetter(prev) || unicode.IsMark(prev)) {
				return "", invalid("name has a combining mark (%U) that does not follow a letter", r)
			}
		case isBidiControl(r):
			return "", invalid("name contains a bidirectional control character (%U)", r)
		case unicode.IsControl(r):
			return "", invalid("name contains a control character (%U)", r)
		case !unicode.IsPrint(r):
			return "", invalid("name contains an invisible character (%U); use letters, digits, spaces, '-', '_' or '.'", r)
		default:
			return "", invalid("name contains %q; use letters, digits, spaces, '-', '_' or '.'", r)
		}
		b.WriteRune(r)
		n++
		prev = r
	}
	if n > MaxNameLen {
		return "", invalid("name is %d characters long; the limit is %d", n, MaxNameLen)
	}
	return b.String(), nil
}

// isBidiControl reports whether r is one of the characters that change the
// direction of the text around them (and could make a name look like
// another, or reorder what follows it).
func isBidiControl(r rune) bool {
	switch {
	case r == '\u061C', r == '\u200E', r == '\u200F':
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// validAuthorKey reports whether key is empty or up to MaxAuthorKeyLen
// lower-case hex digits.
func validAuthorKey(key string) bool {
	if len(key) > MaxAuthorKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SecretLen is the length in bytes of the secret a SecretKeeper keeps.
const SecretLen = 32

// SecretKeeper is implemented by stores that keep the server's secret (the
// key that signs identity cookies), so it survives restarts and, with a
// shared store, is the same on every node.
type SecretKeeper interface {
	// Secret returns the store's SecretLen-byte secret. The first call on
	// a new store creates a random one; concurrent first calls, also from
	// other processes sharing the store, all get the same secret.
	Secret(ctx context.Context) ([]byte, error)
}

// NewSecret returns SecretLen random bytes, for a store's first Secret.
func NewSecret() []byte {
	b := make([]byte, SecretLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return b
}
