package chat_test

// Fuzz targets for the input rules. Each compares the function against an
// independent model of the rule in DESIGN.md and checks the properties the
// rest of hxchat relies on (a name is one URL path segment, a normalised
// text is stable). Seeds live in testdata/fuzz/<FuzzName>/; plain `go test`
// runs them, `go test -run '^$' -fuzz FuzzValidateRoom ./chat/` explores.

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/hxchat/hxchat/chat"
)

// roomModel is the room-name rule of DESIGN.md, written independently of
// chat.ValidateRoom: 1 to 64 characters of valid UTF-8, each a Unicode
// letter or digit, one of "-_.", or a combining mark right after a letter,
// a digit or another mark; none invisible, none a compatibility form
// (compatModel), no mix of scripts (invisibleModel, scriptsAllowedModel in
// message_test.go), composed (NFC), no pile of combining marks, and not
// "." or "..".
func roomModel(name string) bool {
	if !utf8.ValidString(name) || name == "." || name == ".." {
		return false
	}
	n := 0
	prev := rune(-1)
	for _, r := range name {
		n++
		switch {
		case invisibleModel(r), compatModel(r):
			return false
		case unicode.IsLetter(r), unicode.IsDigit(r), strings.ContainsRune("-_.", r):
		case unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me) && prev >= 0 && unicode.In(prev, unicode.L, unicode.Nd, unicode.Mn, unicode.Mc, unicode.Me):
		default:
			return false
		}
		prev = r
	}
	return n >= 1 && n <= chat.MaxRoomLen && scriptsAllowedModel(scriptsModel(name)) &&
		norm.NFC.String(name) == name && marksModel(name)
}

// compatModel reports whether r is a compatibility form of other text, its
// NFKD not its NFD, and not one of the forms kept because a language is
// typed with them: the Hangul compatibility jamo U+3131..U+318E, Thai
// SARA AM, Lao AM, HO NO and HO MO, and Armenian ECH YIWN.
func compatModel(r rune) bool {
	if 0x3131 <= r && r <= 0x318E || strings.ContainsRune("\u0E33\u0EB3\u0EDC\u0EDD\u0587", r) {
		return false
	}
	return norm.NFKD.String(string(r)) != norm.NFD.String(string(r))
}

// marksModel reports whether no character of s carries more than
// chat.MaxMarks combining marks. Characters that draw nothing
// (invisibleModel) and format characters other than the prepended
// concatenation marks (U+0600 ARABIC NUMBER SIGN…, which are drawn and
// take space) neither count nor end a row of marks.
func marksModel(s string) bool {
	run := 0
	for _, r := range s {
		switch {
		case invisibleModel(r), unicode.Is(unicode.Cf, r) && !unicode.Is(unicode.Prepended_Concatenation_Mark, r):
		case unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me):
			run++
		default:
			run = 0
		}
		if run > chat.MaxMarks {
			return false
		}
	}
	return true
}

func FuzzValidateRoom(f *testing.F) {
	for _, s := range []string{"lobby", "../x", "team-7", "한국어", "\u3164", "a\u3164", "\uFFA0", "pаypal", "日本語-chat", "Ελληνικά_日本語", "a\u034F", "\u2800",
		"हिंदी", "สวัสดี", "น้ำ", "\u0301a", "a-\u0301", "ｌｏｂｂｙ", "𝐥𝐨𝐛𝐛𝐲", "ﬁsh", "ㅎㅎ", "ﾾ", "Ⅻ", "a" + strings.Repeat("\u0301\u200D", 9)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := chat.ValidateRoom(name)
		if want := roomModel(name); (err == nil) != want {
			t.Fatalf("ValidateRoom(%q) = %v; the rule says valid=%v", name, err, want)
		}
		if err != nil {
			checkReason(t, err, "room name ")
			if again := chat.ValidateRoom(name); again == nil || again.Error() != err.Error() {
				t.Errorf("ValidateRoom(%q) is not deterministic: %v, then %v", name, err, again)
			}
			return
		}
		if !utf8.ValidString(name) {
			t.Errorf("accepted invalid UTF-8 %q", name)
		}
		if n := utf8.RuneCountInString(name); n < 1 || n > chat.MaxRoomLen {
			t.Errorf("accepted %q of %d characters, want 1..%d", name, n, chat.MaxRoomLen)
		}
		// A room is exactly one path segment of /chat/{room}/: its escaped
		// form has no separator and is not a dot segment a client or proxy
		// would resolve away, and it decodes back to the name.
		esc := url.PathEscape(name)
		if strings.ContainsAny(esc, "/?#\\") {
			t.Errorf("PathEscape(%q) = %q has a path, query or fragment separator", name, esc)
		}
		if esc == "." || esc == ".." {
			t.Errorf("PathEscape(%q) = %q is a dot segment", name, esc)
		}
		if got, err := url.PathUnescape(esc); err != nil || got != name {
			t.Errorf("PathUnescape(PathEscape(%q)) = %q, %v; want the name back", name, got, err)
		}
		// What the browser's URL parser sees must also decode back: the
		// room URL parses to a path whose segment is the name.
		u, err := url.Parse("/chat/" + esc + "/")
		if err != nil {
			t.Fatalf("room URL of %q does not parse: %v", name, err)
		}
		if got, want := u.Path, "/chat/"+name+"/"; got != want {
			t.Errorf("room URL of %q parses to path %q, want %q", name, got, want)
		}
	})
}

// textModel is the message rule of DESIGN.md, written independently of
// chat.NormalizeText: valid UTF-8; CRLF and lone CR become LF; surrounding
// white space is trimmed; then 1 to 2000 characters without control
// characters other than LF and tab, at least one of them neither white
// space nor invisible (invisibleModel in message_test.go).
func textModel(in string) (string, bool) {
	if !utf8.ValidString(in) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		switch {
		case in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n':
			// CRLF: the LF is written next round.
		case in[i] == '\r':
			b.WriteByte('\n')
		default:
			b.WriteByte(in[i])
		}
	}
	out := strings.TrimFunc(b.String(), unicode.IsSpace)
	if out == "" || utf8.RuneCountInString(out) > chat.MaxMessageLen {
		return "", false
	}
	for _, r := range out {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return "", false
		}
	}
	if !strings.ContainsFunc(out, func(r rune) bool { return !unicode.IsSpace(r) && !invisibleModel(r) }) || !marksModel(out) {
		return "", false
	}
	return out, true
}

func FuzzNormalizeText(f *testing.F) {
	for _, s := range []string{"hello", " a\r\nb\rc ", "\u200b", "\ufeff", " \u3164\n", "👩\u200d👩\u200d👧", "\u2800", "a\u200b",
		"a" + strings.Repeat(strings.Repeat("\u0301", 8)+"\u200d", 30), "x" + strings.Repeat("\u0301\u034f", 9), "x\u0301\u0600\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := chat.NormalizeText(in)
		want, ok := textModel(in)
		if (err == nil) != ok {
			t.Fatalf("NormalizeText(%q) = %q, %v; the rule says valid=%v", in, out, err, ok)
		}
		if err != nil {
			checkReason(t, err, "message ")
			if out != "" {
				t.Errorf("NormalizeText(%q) returned %q with error %v, want \"\"", in, out, err)
			}
			return
		}
		if out != want {
			t.Errorf("NormalizeText(%q) = %q, want %q", in, out, want)
		}
		if !utf8.ValidString(out) {
			t.Errorf("output %q is not valid UTF-8", out)
		}
		if out != strings.TrimSpace(out) {
			t.Errorf("output %q is not trimmed", out)
		}
		if n := utf8.RuneCountInString(out); n < 1 || n > chat.MaxMessageLen {
			t.Errorf("output has %d characters, want 1..%d", n, chat.MaxMessageLen)
		}
		if strings.ContainsRune(out, '\r') {
			t.Errorf("output %q has a CR", out)
		}
		for _, r := range out {
			if r != '\n' && r != '\t' && unicode.IsControl(r) {
				t.Errorf("output %q has control character %U", out, r)
			}
		}
		// Stored text goes through NormalizeText again wherever it is
		// re-validated (a replayed or migrated message): it must not change.
		again, err := chat.NormalizeText(out)
		if err != nil || again != out {
			t.Errorf("NormalizeText is not idempotent: NormalizeText(%q) = %q, %v", out, again, err)
		}
	})
}
