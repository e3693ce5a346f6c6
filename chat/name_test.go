package chat_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hxchat/hxchat/chat"
)

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ASCII", "Ann", "Ann"},
		{"DashSpaceDot", "Jo-Ann O.", "Jo-Ann O."},
		{"Korean", "김민수", "김민수"},
		{"Underscore", "snake_case_7", "snake_case_7"},
		{"Digits", "42", "42"},
		{"OneChar", "x", "x"},
		{"Trimmed", "  Ann \u00a0", "Ann"},
		{"SpacesCollapse", "a   b", "a b"},
		{"UnicodeSpacesCollapse", "김\u3000\u00a0 민수", "김 민수"},
		{"MaxLen", strings.Repeat("a", chat.MaxNameLen), strings.Repeat("a", chat.MaxNameLen)},
		{"MaxLenKorean", strings.Repeat("방", chat.MaxNameLen), strings.Repeat("방", chat.MaxNameLen)}, // 96 bytes
		{"MaxLenAfterCollapse", "a" + strings.Repeat(" ", 40) + strings.Repeat("b", chat.MaxNameLen-2), "a " + strings.Repeat("b", chat.MaxNameLen-2)},
		{"CombiningMark", "Zoe\u0308", "Zoe\u0308"},
		{"Devanagari", "हिन्दी", "हिन्दी"},
		{"OtherScripts", "Ελένη Δ.", "Ελένη Δ."},
		{"Arabic", "علي", "علي"},
		{"GuestLooking", "guest-1a2b", "guest-1a2b"},
	} {
		t.Run("OK/"+tc.name, func(t *testing.T) {
			got, err := chat.NormalizeName(tc.in)
			if err != nil {
				t.Fatalf("NormalizeName(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeName(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again, err := chat.NormalizeName(got); err != nil || again != got {
				t.Errorf("NormalizeName(%q) = (%q, %v), want it unchanged (idempotent)", got, again, err)
			}
		})
	}
	for _, tc := range []struct{ name, in, mention string }{
		{"Empty", "", "empty"},
		{"Blank", " \u3000 ", "empty"},
		{"TooLong", strings.Repeat("a", chat.MaxNameLen+1), "33 characters"},
		{"TooLongKorean", strings.Repeat("방", chat.MaxNameLen+1), "33 characters"},
		{"HTML", "<b>", "'<'"},
		{"HTMLInside", "Ann<b>", "'<'"},
		{"Ampersand", "A&B", "'&'"},
		{"Quote", `An"n`, `'"'`},
		{"Tab", "Jo\tAnn", "control character (U+0009)"},
		{"Newline", "Jo\nAnn", "control character (U+000A)"},
		{"NUL", "a\x00b", "control character (U+0000)"},
		{"Escape", "a\x1b[31m", "control character (U+001B)"},
		{"C1Control", "a\u0085b", "control character (U+0085)"},
		{"RLO", "abc\u202Edef", "bidirectional control character (U+202E)"},
		{"RLI", "a\u2067b", "bidirectional control character (U+2067)"},
		{"RLM", "a\u200Fb", "bidirectional control character (U+200F)"},
		{"ArabicLetterMark", "a\u061Cb", "bidirectional control character (U+061C)"},
		{"ZeroWidthSpace", "a\u200Bb", "invisible character (U+200B)"},
		{"ZeroWidthJoiner", "a\u200Db", "invisible character (U+200D)"},
		{"LineSeparator", "a\u2028b", "invisible character (U+2028)"},
		{"Emoji", "Ann 😀", "'😀'"},
		{"EmojiOnly", "🚀", "'🚀'"},
		{"Slash", "a/b", "'/'"},
		{"LeadingMark", "\u0308a", "combining mark (U+0308)"},
		{"MarkAfterSpace", "a \u0308", "combining mark (U+0308)"},
		{"InvalidUTF8", "Ann\xff", "UTF-8"},
	} {
		t.Run("Bad/"+tc.name, func(t *testing.T) {
			got, err := chat.NormalizeName(tc.in)
			if err == nil {
				t.Fatalf("NormalizeName(%q) = %q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("NormalizeName(%q) returned %q with its error, want \"\"", tc.in, got)
			}
			checkReason(t, err, "name ")
			if r := chat.Reason(err); !strings.Contains(r, tc.mention) {
				t.Errorf("Reason = %q, want it to mention %q", r, tc.mention)
			}
		})
	}
}

func TestHubPostAuthor(t *testing.T) {
	h, store := newHub(t, chat.HubOptions{})
	got, err := post(t, h, "lobby", "  Jo   Ann ", "hi")
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	if got.Author != "Jo Ann" {
		t.Errorf("Post stored author %q, want the normalised %q", got.Author, "Jo Ann")
	}
	m, err := h.Post(t.Context(), "lobby", chat.Author{Name: "Ann", Key: "0123456789ab"}, "with a key")
	if err != nil {
		t.Fatalf("Post with a key: %v", err)
	}
	if m.AuthorKey != "0123456789ab" {
		t.Errorf("Post returned AuthorKey %q, want %q", m.AuthorKey, "0123456789ab")
	}
	stored, err := store.Recent(t.Context(), "lobby", 1)
	if err != nil || len(stored) != 1 || stored[0].AuthorKey != "0123456789ab" || stored[0].Author != "Ann" {
		t.Errorf("stored %+v, %v; want Ann with key 0123456789ab", stored, err)
	}

	for _, tc := range []struct {
		name   string
		author chat.Author
	}{
		{"EmptyName", chat.Author{}},
		{"HTMLName", chat.Author{Name: "<b>x</b>"}},
		{"BidiName", chat.Author{Name: "a\u202Eb"}},
		{"UpperCaseKey", chat.Author{Name: "Ann", Key: "ABCDEF"}},
		{"NonHexKey", chat.Author{Name: "Ann", Key: `x" onmouseover="`}},
		{"LongKey", chat.Author{Name: "Ann", Key: strings.Repeat("a", chat.MaxAuthorKeyLen+1)}},
	} {
		t.Run("Bad/"+tc.name, func(t *testing.T) {
			m, err := h.Post(t.Context(), "quiet", tc.author, "hello")
			if !errors.Is(err, chat.ErrInvalid) {
				t.Fatalf("Post by %+v = (%+v, %v), want an error wrapping chat.ErrInvalid", tc.author, m, err)
			}
			if got, _ := store.Recent(t.Context(), "quiet", 10); len(got) != 0 {
				t.Errorf("stored %+v, want nothing", got)
			}
		})
	}
}

func TestMemorySecret(t *testing.T) {
	a, b := chat.NewMemoryStore(0), chat.NewMemoryStore(0)
	defer a.Close()
	defer b.Close()
	sa, err := a.Secret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Secret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if string(sa) == string(sb) {
		t.Errorf("two memory stores share the secret %x, want one each", sa)
	}
}

// FuzzNormalizeName checks the properties the rest of hxchat relies on: a
// name that passes is stable, within the limit, has no space at its ends or
// two in a row, and holds nothing that HTML, CSS or bidi could act on.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"Ann", " Jo  Ann ", "김민수", "<b>", "a\u202Eb", "e\u0301", "\u0301", strings.Repeat("a", 33), "a\u3000\u3000b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := chat.NormalizeName(in)
		if err != nil {
			checkReason(t, err, "name ")
			return
		}
		if n := utf8.RuneCountInString(out); n < 1 || n > chat.MaxNameLen {
			t.Fatalf("NormalizeName(%q) = %q: %d characters", in, out, n)
		}
		if strings.TrimSpace(out) != out || strings.Contains(out, "  ") {
			t.Fatalf("NormalizeName(%q) = %q: spaces at the ends or doubled", in, out)
		}
		if strings.ContainsAny(out, "<>&\"'`/\\;:{}()\t\n\r\x00") {
			t.Fatalf("NormalizeName(%q) = %q: holds markup or control characters", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || (unicode.IsSpace(r) && r != ' ') {
				t.Fatalf("NormalizeName(%q) = %q: holds %U", in, out, r)
			}
		}
		if again, err := chat.NormalizeName(out); err != nil || again != out {
			t.Fatalf("NormalizeName not idempotent: %q -> %q -> (%q, %v)", in, out, again, err)
		}
	})
}
