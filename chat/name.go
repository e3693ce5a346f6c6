package chat

import (
	"context"
	"crypto/rand"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
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
// every run of space separators (Zs: a space, U+3000, a no-break space…)
// inside it into one space, and checks it: 1 to 32 characters of valid
// UTF-8, each a Unicode letter (with any combining marks that follow it) or
// digit, a space, or one of '-', '_' and '.'. No character may be invisible,
// even where it is a letter or a mark: the Hangul fillers U+115F, U+1160,
// U+3164 and U+FFA0, any other Default_Ignorable_Code_Point (U+200B..U+200F,
// U+2060..U+206F, U+FEFF, the soft hyphen U+00AD, U+034F, U+17B4, U+17B5,
// U+180B..U+180F, variation selectors, tag characters U+E0000..U+E0FFF…),
// U+2800 BRAILLE PATTERN BLANK and U+1D159 MUSICAL SYMBOL NULL NOTEHEAD. And
// its letters must not mix scripts beyond UTS #39's "moderately restrictive"
// level: one script; or Latin with Han and Hiragana and Katakana, with Han
// and Bopomofo, or with Han and Hangul; or Latin and one other recommended
// script (in modern use, UAX #31 Table 4: Arabic, Armenian, Devanagari,
// Hebrew, Thai…, not Cherokee) except Cyrillic and Greek. Characters of the
// Common and Inherited scripts (ASCII digits, '-', '_', '.', space, most
// combining marks) go with any script. So "Ann", "Jo-Ann O.", "김민수", "田中
// Taro", "Ελένη" and "Дмитрий" are names; "<b>", tabs, control, bidi and
// invisible characters, emoji, and "Pаypal" with a Cyrillic а are not. The
// error wraps ErrInvalid and says what is wrong.
//
// NormalizeName is the rule for any name shown on a message, guests' labels
// ("guest-de82") included; a name a person picks for themselves must also
// pass NormalizeChosenName.
func NormalizeName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("name is not valid UTF-8")
	}
	// Composed (NFC), so one name has one spelling: a decomposed "Zoë"
	// from a paste is the same name as the composed one.
	s = norm.NFC.String(strings.TrimSpace(s))
	if s == "" {
		return "", invalid("name is empty")
	}
	if r := markPile(s); r >= 0 {
		return "", invalid("name has more than %d combining marks in a row (%U)", MaxMarks, r)
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
		case isBidiControl(r):
			return "", invalid("name contains a bidirectional control character (%U)", r)
		case isInvisible(r):
			// Before letters and marks: U+3164 is a letter, U+034F a mark.
			return "", invalid("name contains an invisible character (%U)", r)
		case unicode.IsLetter(r), unicode.IsDigit(r), r == ' ', r == '-', r == '_', r == '.':
		case unicode.IsMark(r):
			// Many scripts need combining marks (Devanagari vowel signs,
			// a decomposed "ë"); a mark on anything but a letter is not
			// part of a name.
			if prev < 0 || !(unicode.IsLetter(prev) || unicode.IsMark(prev)) {
				return "", invalid("name has a combining mark (%U) that does not follow a letter", r)
			}
		case unicode.IsControl(r):
			return "", invalid("name contains a control character (%U)", r)
		case unicode.Is(unicode.Cf, r):
			// The few format characters that are drawn (U+0600 ARABIC
			// NUMBER SIGN…).
			return "", invalid("name contains a format character (%U); use letters, digits, spaces, '-', '_' or '.'", r)
		case !unicode.IsPrint(r):
			return "", invalid("name contains an invisible character (%U)", r)
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
	name := b.String()
	if scripts, r := scriptClash(name); scripts != nil {
		return "", invalid("name mixes %s letters (%U); use letters of one script", scriptList(scripts), r)
	}
	return name, nil
}

// NormalizeChosenName is NormalizeName for a name a person picks for
// themselves. On top of NormalizeName's rules it refuses a name whose
// skeleton begins with "guest": the name NFKD-normalised (so fullwidth
// "ｇｕｅｓｔ" and mathematical "𝐠𝐮𝐞𝐬𝐭" are "guest"), case-folded, stripped of
// combining marks, and with the letters that pass for g, u, e, s and t
// mapped to them (ɡ U+0261, Cyrillic е U+0435 and ѕ U+0455, Armenian ս
// U+057D and ց U+0581, Greek τ, Cherokee Ꮐ, the small capitals ᴜ and ꜱ…; the
// list is in spoof.go). Names beginning with "guest" are kept for guests,
// who are shown as "guest-" and the first four hex digits of their key, so
// nobody can pass for one. The error wraps ErrInvalid.
func NormalizeChosenName(s string) (string, error) {
	name, err := NormalizeName(s)
	if err != nil {
		return "", err
	}
	if looksLikeGuest(name) {
		return "", invalid("name begins with \"guest\" or a look-alike of it; names beginning with \"guest\" are kept for guests")
	}
	return name, nil
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
