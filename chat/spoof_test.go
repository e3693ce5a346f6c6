package chat

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestSkeleton(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"guest-de82", "guest-de82"},
		{"Guest-DE82", "guest-de82"},
		{"ｇｕｅｓｔ－ｄｅ８２", "guest-de82"},
		{"𝐠𝐮𝐞𝐬𝐭", "guest"},
		{"𝔤𝔲𝔢𝔰𝔱", "guest"}, // fraktur
		{"ɢᴜᴇꜱᴛ", "guest"},
		{"ꓖꓴꓰꓢꓔ", "guest"},
		{"gueſt", "guest"},
		{"gueﬆ", "guest"},
		{"ĝüéšţ", "guest"},
		{"GUEST", "guest"},
		{"Anna", "anna"},
		{"Ελένη", "eλeνη"}, // ε is an e look-alike; the rest stays Greek
		{"Straße", "strasse"},
	} {
		if got := skeleton(tc.in); got != tc.want {
			t.Errorf("skeleton(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestGuestLookalikes checks every look-alike, and the capitals and small
// letters that case-fold to one, end as its letter in the skeleton.
func TestGuestLookalikes(t *testing.T) {
	for r, want := range guestLookalikes {
		if got := skeleton(string(r)); got != string(want) {
			t.Errorf("skeleton(%q) = %q, want %q", r, got, want)
		}
		if got := skeleton(string(unicode.ToUpper(r))); got != string(want) {
			t.Errorf("skeleton(%q), the capital of %q, = %q, want %q", unicode.ToUpper(r), r, got, want)
		}
	}
	for _, tc := range []struct {
		r    rune
		want string
	}{
		{'Ԍ', "g"}, {'ꮐ', "g"}, // Cherokee small letters fold to the capitals
		{'Ս', "u"}, {'𐓎', "u"}, {'𑢸', "u"},
		{'Ε', "e"}, {'Е', "e"}, {'ℯ', "e"}, {'ⅇ', "e"},
		{'Ѕ', "s"}, {'Տ', "s"}, {'ꮪ', "s"}, {'ꮥ', "s"}, {'𐐠', "s"}, {'ſ', "s"},
		{'Τ', "t"}, {'Т', "t"}, {'Ⲧ', "t"}, {'ꭲ', "t"},
		{'ｇ', "g"}, {'ℊ', "g"}, {'𝐆', "g"},
	} {
		if got := skeleton(string(tc.r)); got != tc.want {
			t.Errorf("skeleton(%q) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// TestCompatForm checks isCompatForm, which compares the tables'
// decompositions, against NFKD and NFD of every code point, and that it
// looks at the first character only.
func TestCompatForm(t *testing.T) {
	if testing.Short() {
		t.Skip("looks at all 1,114,112 code points")
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		want := norm.NFKD.String(s) != norm.NFD.String(s)
		if got := isCompatForm(s + "a"); got != want {
			t.Errorf("isCompatForm(%+q) = %v, want %v", s, got, want)
		}
	}
}

func TestKeptCompat(t *testing.T) {
	for _, r := range "ㄱㅎㅏㆎ\u3164ำຳໜໝև" {
		if !keptCompat(r) {
			t.Errorf("keptCompat(%+q) = false, want true", r)
		}
		if !isCompatForm(string(r)) {
			t.Errorf("isCompatForm(%+q) = false: kept for nothing", r)
		}
	}
	for _, r := range "ｌ𝐥ﬁ²ⓛｶﾾⅫſ\u3130\u318F" {
		if keptCompat(r) {
			t.Errorf("keptCompat(%+q) = true, want false", r)
		}
	}
}

func TestScriptOf(t *testing.T) {
	for _, tc := range []struct {
		r    rune
		want string
	}{
		{'a', "Latin"}, {'Z', "Latin"}, {'é', "Latin"}, {'ｇ', "Latin"}, {'ɡ', "Latin"},
		{'е', "Cyrillic"}, {'Ε', "Greek"}, {'ս', "Armenian"}, {'Ꮐ', "Cherokee"},
		{'田', "Han"}, {'々', "Han"}, {'た', "Hiragana"}, {'タ', "Katakana"}, {'ｶ', "Katakana"},
		{'김', "Hangul"}, {'ㅎ', "Hangul"}, {'ㄅ', "Bopomofo"}, {'٣', "Arabic"}, {'ि', "Devanagari"},
		// Common and Inherited: no script.
		{'7', ""}, {'-', ""}, {' ', ""}, {'ー', ""}, {'１', ""}, {'𝐠', ""}, {'\u0301', ""}, {'\u3099', ""},
	} {
		if got := scriptOf(tc.r); got != tc.want {
			t.Errorf("scriptOf(%q) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// TestScriptOfMatchesTables compares the sorted table against a plain
// search of unicode.Scripts for every letter, mark and digit.
func TestScriptOfMatchesTables(t *testing.T) {
	if testing.Short() {
		t.Skip("looks at every letter, mark and digit")
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.In(r, unicode.L, unicode.M, unicode.N) {
			continue
		}
		want := ""
		for name, table := range unicode.Scripts {
			if name != "Common" && name != "Inherited" && unicode.Is(table, r) {
				want = name
			}
		}
		if got := scriptOf(r); got != want {
			t.Errorf("scriptOf(%U) = %q, want %q", r, got, want)
		}
	}
}

func TestScriptsAllowed(t *testing.T) {
	for _, tc := range []struct {
		scripts string
		want    bool
	}{
		{"", true},
		{"Latin", true},
		{"Cyrillic", true},
		{"Cherokee", true},
		{"Latin Han Hiragana Katakana", true},
		{"Katakana Hiragana", true},
		{"Han Bopomofo Latin", true},
		{"Hangul Han Latin", true},
		{"Latin Hangul", true},
		{"Latin Arabic", true},
		{"Devanagari Latin", true},
		{"Latin Armenian", true},
		{"Latin Cyrillic", false},
		{"Greek Latin", false},
		{"Cyrillic Greek", false},
		{"Latin Cherokee", false}, // not a recommended script
		{"Hangul Hiragana", false},
		{"Han Bopomofo Hangul", false},
		{"Latin Devanagari Bengali", false},
		{"Latin Han Hiragana Katakana Hangul", false},
	} {
		if got := scriptsAllowed(strings.Fields(tc.scripts)); got != tc.want {
			t.Errorf("scriptsAllowed(%q) = %v, want %v", tc.scripts, got, tc.want)
		}
	}
}

func TestScriptList(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Latin", "Latin"},
		{"Latin Cyrillic", "Latin and Cyrillic"},
		{"Latin Han Cyrillic", "Latin, Han and Cyrillic"},
	} {
		if got := scriptList(strings.Fields(tc.in)); got != tc.want {
			t.Errorf("scriptList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkValidateRoom measures the check every room request makes.
func BenchmarkValidateRoom(b *testing.B) {
	for _, room := range []string{"lobby", "한국어_2024-seoul", "日本語-にほんご-ニホンゴ"} {
		b.Run(room, func(b *testing.B) {
			for b.Loop() {
				if err := ValidateRoom(room); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
