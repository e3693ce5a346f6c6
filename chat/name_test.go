package chat_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

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
		{"CombiningMark", "Zoe\u0308", "Zo\u00eb"}, // composed (NFC): one name, one spelling
		{"MarksUpToLimit", "a" + strings.Repeat("\u0301", chat.MaxMarks), "\u00e1" + strings.Repeat("\u0301", chat.MaxMarks-1)},
		{"Devanagari", "हिन्दी", "हिन्दी"},
		{"OtherScripts", "Ελένη Δ.", "Ελένη Δ."},
		{"Arabic", "علي", "علي"},
		// A guest's label is a name shown on messages (Hub.Post checks it
		// with NormalizeName); only NormalizeChosenName keeps it for guests.
		{"GuestLabel", "guest-1a2b", "guest-1a2b"},
		{"Accented", "Zoë O.", "Zoë O."},
		{"HanAndLatin", "田中 Taro", "田中 Taro"},
		{"Japanese", "山田たろう タロウ", "山田たろう タロウ"},
		{"JapaneseAndLatin", "田中たろう Taro", "田中たろう Taro"},
		{"HangulAndLatin", "김민수 Kim", "김민수 Kim"},
		{"HangulAndHan", "金민수", "金민수"},
		{"HanAndBopomofo", "王ㄒㄧㄠ", "王ㄒㄧㄠ"},
		{"Greek", "Ελένη", "Ελένη"},
		{"Cyrillic", "Дмитрий", "Дмитрий"},
		{"CyrillicWithDigits", "Дмитрий_42", "Дмитрий_42"},
		{"LatinAndDevanagari", "Ram राम", "Ram राम"},
		{"LatinAndArabic", "Ali علي", "Ali علي"},
		{"LatinAndArabicDigits", "Ann ٣", "Ann ٣"},
		{"Cherokee", "ᏣᎳᎩ", "ᏣᎳᎩ"},
		{"Fullwidth", "ＡＮＮ", "ＡＮＮ"},
		// Compatibility forms stay in names (unlike room names): the
		// guest rule sees through them with its NFKD skeleton.
		{"MathBold", "𝐀𝐧𝐧", "𝐀𝐧𝐧"},
		{"Ligature", "ﬁona", "ﬁona"},
		{"Tamil", "தமிழ்செல்வி", "தமிழ்செல்வி"},
		{"Thai", "สมชาย น้ำ", "สมชาย น้ำ"},
		{"ArabicVowelled", "مُحَمَّد", "مُحَمَّد"},
		// Invisible characters are refused, not dropped: a visible
		// character that merely resembles one stays.
		{"HangulJamo", "ㅎㅎ", "ㅎㅎ"},
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
		{"Zalgo", "Ann" + strings.Repeat("\u0336", 40), "more than 8 combining marks in a row (U+0336)"},
		// A joiner between marks does not start a new row of them.
		{"ZalgoThroughJoiner", "Ann" + strings.Repeat(strings.Repeat("\u0336", 5)+"\u200D", 2), "more than 8 combining marks in a row (U+0336)"},
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
		// Characters that render as nothing, alone and inside a name.
		{"HangulFiller", "\u3164", "invisible character (U+3164)"},
		{"HangulChoseongFiller", "\u115F", "invisible character (U+115F)"},
		{"HangulJungseongFiller", "\u1160", "invisible character (U+1160)"},
		{"HalfwidthHangulFiller", "\uFFA0", "invisible character (U+FFA0)"},
		{"HangulFillers", "\u3164\u3164\u3164", "invisible character (U+3164)"},
		{"HangulFillerInside", "김\u3164민수", "invisible character (U+3164)"},
		{"HangulFillerAfter", "Ann\u3164", "invisible character (U+3164)"},
		{"HangulFillerBefore", "\u3164Ann", "invisible character (U+3164)"},
		{"ChoseongFillerInside", "Ann \u115F Lee", "invisible character (U+115F)"},
		{"JungseongFillerAfterJamo", "\u1100\u1160", "invisible character (U+1160)"},
		{"HalfwidthFillerInside", "a\uFFA0b", "invisible character (U+FFA0)"},
		{"ZeroWidthSpaceOnly", "\u200B", "invisible character (U+200B)"},
		{"ZeroWidthNonJoiner", "a\u200Cb", "invisible character (U+200C)"},
		{"WordJoiner", "a\u2060b", "invisible character (U+2060)"},
		{"InvisibleTimes", "a\u2062b", "invisible character (U+2062)"},
		{"BOM", "\uFEFFAnn", "invisible character (U+FEFF)"},
		{"SoftHyphen", "An\u00ADn", "invisible character (U+00AD)"},
		{"SoftHyphenOnly", "\u00AD", "invisible character (U+00AD)"},
		{"CombiningGraphemeJoiner", "Ann\u034F", "invisible character (U+034F)"},
		{"CGJInside", "A\u034Fnn", "invisible character (U+034F)"},
		{"VariationSelector16", "Ann\uFE0F", "invisible character (U+FE0F)"},
		{"VariationSelector1", "a\uFE00", "invisible character (U+FE00)"},
		{"VariationSelectorSupplement", "a\U000E0100", "invisible character (U+E0100)"},
		{"MongolianFVS", "\u1820\u180B", "invisible character (U+180B)"},
		{"MongolianVowelSeparator", "\u1820\u180E\u1820", "invisible character (U+180E)"},
		{"KhmerInherentAq", "\u1780\u17B4", "invisible character (U+17B4)"},
		{"KhmerInherentAa", "\u1780\u17B5", "invisible character (U+17B5)"},
		{"TagCharacter", "Ann\U000E0041", "invisible character (U+E0041)"},
		{"TagLanguage", "\U000E0001", "invisible character (U+E0001)"},
		{"CancelTag", "a\U000E007F", "invisible character (U+E007F)"},
		{"BrailleBlank", "\u2800", "invisible character (U+2800)"},
		{"BrailleBlankInside", "Ann\u2800Lee", "invisible character (U+2800)"},
		{"MusicalNullNotehead", "a\U0001D159", "invisible character (U+1D159)"},
		{"ArabicNumberSign", "a\u0600", "format character (U+0600)"},
		// Letters of scripts mixed to imitate a word.
		{"LatinAndCyrillic", "guеst-de82", "mixes Latin and Cyrillic letters (U+0435)"},
		{"CyrillicAInLatin", "Pаypal", "mixes Latin and Cyrillic letters (U+0430)"},
		{"CyrillicAndLatin", "Дмитрий Smith", "mixes Cyrillic and Latin letters (U+0053)"},
		{"LatinAndGreek", "Anna Ελένη", "mixes Latin and Greek letters (U+0395)"},
		{"GreekOmicronInLatin", "Bοb", "mixes Latin and Greek letters (U+03BF)"},
		{"CyrillicAndGreek", "Дмитрий Ελένη", "mixes Cyrillic and Greek letters (U+0395)"},
		{"LatinAndCherokee", "Ꭺnna", "mixes Cherokee and Latin letters (U+006E)"},
		{"HangulAndKana", "김 たなか", "mixes Hangul and Hiragana letters (U+305F)"},
		{"ThreeScripts", "Ram राम রাম", "mixes Latin, Devanagari and Bengali letters (U+09B0)"},
		{"JapaneseAndHangul", "田中たろう 김", "mixes Han, Hiragana and Hangul letters (U+AE40)"},
		{"ArabicDigitsWithCyrillic", "Дима ٣", "mixes Cyrillic and Arabic letters (U+0663)"},
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

func TestNormalizeChosenName(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ASCII", "Anna", "Anna"},
		{"Normalised", "  Jo   Ann ", "Jo Ann"},
		{"Korean", "김민수", "김민수"},
		{"HanAndLatin", "田中 Taro", "田中 Taro"},
		{"Greek", "Ελένη", "Ελένη"},
		{"Cyrillic", "Дмитрий", "Дмитрий"},
		{"GuestInside", "the guest", "the guest"},
		{"GuestLater", "Tom guest-de82", "Tom guest-de82"},
		{"Gust", "gust", "gust"},
		{"Guesser", "Guesser", "Guesser"},
		{"Augustine", "Augustine", "Augustine"},
	} {
		t.Run("OK/"+tc.name, func(t *testing.T) {
			got, err := chat.NormalizeChosenName(tc.in)
			if err != nil {
				t.Fatalf("NormalizeChosenName(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeChosenName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	const kept = `begins with "guest"`
	for _, tc := range []struct{ name, in, mention string }{
		{"GuestLabel", "guest-de82", kept},
		{"GuestLabelUpper", "Guest-DE82", kept},
		{"GuestAllCaps", "GUEST", kept},
		{"GuestAlone", "guest", kept},
		{"GuestPadded", "  guest  ", kept},
		{"GuestNoDash", "guest de82", kept},
		{"GuestPrefix", "guestroom", kept},
		{"GuestStar", "Guest Star", kept},
		{"Fullwidth", "ｇｕｅｓｔ-de82", kept},
		{"FullwidthUpper", "ＧＵＥＳＴ", kept},
		{"FullwidthG", "ｇuest", kept},
		{"MathBold", "𝐠𝐮𝐞𝐬𝐭", kept},
		{"MathBoldCapitals", "𝐆𝐔𝐄𝐒𝐓-de82", kept},
		{"MathItalic", "𝑔𝑢𝑒𝑠𝑡", kept},
		{"ScriptG", "ɡuest", kept},       // U+0261
		{"SmallCapitals", "ɢᴜᴇꜱᴛ", kept}, // U+0262 U+1D1C U+1D07 U+A731 U+1D1B
		{"SmallCapitalU", "gᴜest", kept},
		{"SmallCapitalS", "gueꜱt", kept},
		{"LongS", "gueſt", kept}, // U+017F
		{"StLigature", "gueﬆ", kept},
		{"DotAboveG", "ġuest", kept},
		{"CedillaG", "ģuest", kept},
		{"CombiningAcute", "gue\u0301st", kept},
		{"CombiningUnder", "g\u0323uest", kept},
		{"ArmenianCo", "ցuest", kept},        // Latin and Armenian may mix; the skeleton catches it
		{"ArmenianSeh", "gսest-de82", kept},  // U+057D
		{"VWithHook", "gʋest", kept},         // U+028B
		{"TurnedDelta", "ƍuest", kept},       // U+018D
		{"PalatalHookG", "ᶃuest", kept},      // U+1D83
		{"ToneFive", "gueƽt", kept},          // U+01BD
		{"ScriptSmallE", "guℯst", kept},      // U+212F, NFKD e
		{"DoubleStruckE", "guⅇst", kept},     // U+2147, NFKD e
		{"CyrillicE", "guеst-de82", "mixes"}, // refused as mixed script first
		{"CyrillicDze", "gueѕt", "mixes"},    // U+0455
		{"GreekTau", "gueѕτ", "mixes"},       // Latin, Cyrillic and Greek
		{"CherokeeG", "Ꮐuest", "mixes"},      // Cherokee is not a recommended script
		{"AllCyrillic", "ԍսеѕт", "mixes"},    // Armenian ս among Cyrillic
		{"Lisu", "ꓖꓴꓰꓢꓔ", kept},              // one script, so only the skeleton catches it
	} {
		t.Run("Bad/"+tc.name, func(t *testing.T) {
			got, err := chat.NormalizeChosenName(tc.in)
			if err == nil {
				t.Fatalf("NormalizeChosenName(%q) = %q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("NormalizeChosenName(%q) returned %q with its error, want \"\"", tc.in, got)
			}
			checkReason(t, err, "name ")
			if r := chat.Reason(err); !strings.Contains(r, tc.mention) {
				t.Errorf("Reason = %q, want it to mention %q", r, tc.mention)
			}
		})
	}
	t.Run("ReasonSaysWhy", func(t *testing.T) {
		_, err := chat.NormalizeChosenName("guest-de82")
		if got, want := chat.Reason(err), `name begins with "guest" or a look-alike of it; names beginning with "guest" are kept for guests`; got != want {
			t.Errorf("Reason = %q, want %q", got, want)
		}
	})
	t.Run("NameRulesFirst", func(t *testing.T) {
		// Whatever NormalizeName refuses, NormalizeChosenName refuses
		// with the same reason.
		for _, in := range []string{"", "<b>", "a\u3164", "Pаypal", strings.Repeat("a", chat.MaxNameLen+1)} {
			_, want := chat.NormalizeName(in)
			_, got := chat.NormalizeChosenName(in)
			if got == nil || got.Error() != want.Error() {
				t.Errorf("NormalizeChosenName(%q) = %v, want NormalizeName's %v", in, got, want)
			}
		}
	})
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
	// Guests post under their label, which NormalizeChosenName keeps for
	// them but NormalizeName must let through.
	if m, err := h.Post(t.Context(), "lobby", chat.Author{Name: "guest-de82", Key: "de82a1b2c3d4"}, "hi from a guest"); err != nil || m.Author != "guest-de82" {
		t.Errorf("Post by a guest = (%+v, %v), want it stored as guest-de82", m, err)
	}

	for _, tc := range []struct {
		name   string
		author chat.Author
	}{
		{"EmptyName", chat.Author{}},
		{"HTMLName", chat.Author{Name: "<b>x</b>"}},
		{"BidiName", chat.Author{Name: "a\u202Eb"}},
		{"InvisibleName", chat.Author{Name: "\u3164"}},
		{"MixedScriptName", chat.Author{Name: "Pаypal"}},
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
// two in a row, holds nothing that HTML, CSS or bidi could act on, nothing
// invisible and no mix of scripts; and NormalizeChosenName either takes it
// unchanged (never one beginning with "guest") or refuses it with a reason.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"Ann", " Jo  Ann ", "김민수", "<b>", "a\u202Eb", "e\u0301", "\u0301", strings.Repeat("a", 33), "a\u3000\u3000b",
		"\u3164", "a\u034F", "guest-de82", "ｇｕｅｓｔ", "guеst", "田中 Taro", "Дмитрий", "ꓖꓴꓰꓢꓔ",
		"தமிழ்", "Ann" + strings.Repeat("\u0336\u200D", 9)} {
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
			if invisibleModel(r) {
				t.Fatalf("NormalizeName(%q) = %q: holds invisible %U", in, out, r)
			}
		}
		if scripts := scriptsModel(out); !scriptsAllowedModel(scripts) {
			t.Fatalf("NormalizeName(%q) = %q: mixes scripts %v", in, out, scripts)
		}
		if again, err := chat.NormalizeName(out); err != nil || again != out {
			t.Fatalf("NormalizeName not idempotent: %q -> %q -> (%q, %v)", in, out, again, err)
		}
		// A chosen name is a name that does not look like a guest's.
		chosen, err := chat.NormalizeChosenName(in)
		switch {
		case err == nil && chosen != out:
			t.Fatalf("NormalizeChosenName(%q) = %q, want NormalizeName's %q", in, chosen, out)
		case err == nil && strings.HasPrefix(strings.ToLower(norm.NFKD.String(out)), "guest"):
			t.Fatalf("NormalizeChosenName(%q) = %q: accepted a name beginning with guest", in, chosen)
		case err != nil:
			checkReason(t, err, "name ")
		}
	})
}
