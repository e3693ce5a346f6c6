package chat_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/hxchat/hxchat/chat"
)

// checkReason fails the test unless err wraps chat.ErrInvalid and its Reason
// is a sentence fit to show a user: printable valid UTF-8 that starts with
// prefix and does not repeat the sentinel's "invalid input".
func checkReason(t *testing.T, err error, prefix string) {
	t.Helper()
	if !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("error %v does not wrap chat.ErrInvalid", err)
		return
	}
	r := chat.Reason(err)
	switch {
	case !strings.HasPrefix(r, prefix):
		t.Errorf("Reason = %q, want it to start with %q", r, prefix)
	case strings.Contains(r, chat.ErrInvalid.Error()):
		t.Errorf("Reason = %q, want it without %q", r, chat.ErrInvalid.Error())
	case !utf8.ValidString(r):
		t.Errorf("Reason = %q, want valid UTF-8", r)
	case len(r) > 200:
		t.Errorf("Reason is %d bytes long, want a short sentence: %q", len(r), r)
	}
	for _, c := range r {
		if !unicode.IsPrint(c) {
			t.Errorf("Reason = %q contains unprintable %U, want only printable characters", r, c)
			break
		}
	}
}

func TestValidateRoom(t *testing.T) {
	for _, tc := range []struct{ name, room string }{
		{"ASCII", "lobby"},
		{"Dash", "team-7"},
		{"Korean", "한국어"},
		{"DotUnderscore", "a.b_c"},
		{"Digits", "42"},
		{"OneChar", "x"},
		{"DotsInside", "v1.2.3"},
		{"LeadingDot", ".hidden"},
		{"ThreeDots", "..."},
		{"MaxLen", strings.Repeat("a", chat.MaxRoomLen)},
		{"MaxLenKorean", strings.Repeat("방", chat.MaxRoomLen)}, // 192 bytes, 64 characters
		{"Greek", "Ελληνικά"},
		{"Japanese", "日本語-にほんご-ニホンゴ"},
		{"JapaneseAndLatin", "日本語-chat"},
		{"Arabic", "العربية"},
		{"Cyrillic", "русский-7"},
		{"KoreanAndLatin", "한국어_2024-seoul"},
		{"KoreanAndHan", "韓國語-한국어"},
		{"ChineseAndBopomofo", "中文ㄓㄨㄥ"},
		{"LatinAndThai", "thai-ภาษาไทย"},
		{"NonLatinDigits", "٣٤٥"},
		{"HangulJamo", "ㅎㅎ"},
		{"HangulJamoKieuk", "ㅋㅋㅋ"},
		// Scripts written with combining marks: vowel signs, viramas,
		// anusvara, Arabic vowel marks.
		{"Hindi", "हिंदी"},
		{"HindiVirama", "हिन्दी"},
		{"Tamil", "தமிழ்"},
		{"Bengali", "বাংলা"},
		{"Thai", "สวัสดี"},
		{"ThaiSaraAm", "น้ำ"}, // U+0E33 has a compatibility decomposition but is how Thai is typed
		{"Lao", "ໝາ"},         // U+0EDD likewise
		{"ArmenianEchYiwn", "Երևան"},
		{"ArabicVowelled", "مَرْحَبًا"},
		{"Vietnamese", "Tiếng-Việt"}, // composed, so NFC
		{"Telugu", "తెలుగు"},
		{"MarksOnMarks", "ཀྲྀ"}, // Tibetan stack
		{"MarkAfterDigit", "7\u0303"},
		{"MarksUpToLimit", "x" + strings.Repeat("\u0301", chat.MaxMarks)},
		{"DigitsAndMarks", "हिंदी-2024"},
	} {
		t.Run("OK/"+tc.name, func(t *testing.T) {
			if err := chat.ValidateRoom(tc.room); err != nil {
				t.Errorf("ValidateRoom(%q) = %v, want nil", tc.room, err)
			}
		})
	}
	for _, tc := range []struct{ name, room string }{
		{"Empty", ""},
		{"Dot", "."},
		{"DotDot", ".."},
		{"ParentPath", "../x"},
		{"Slash", "a/b"},
		{"Backslash", `a\b`},
		{"LeadingSlash", "/etc"},
		{"Space", "two words"},
		{"OnlySpace", " "},
		{"Tab", "a\tb"},
		{"Newline", "lobby\n"},
		{"CR", "a\rb"},
		{"NUL", "a\x00b"},
		{"Escape", "a\x1b[31m"},
		{"DEL", "a\x7f"},
		{"C1Control", "a\u0085b"},
		{"TooLong", strings.Repeat("a", chat.MaxRoomLen+1)},
		{"TooLongKorean", strings.Repeat("방", chat.MaxRoomLen+1)},
		{"InvalidUTF8", "lobby\xff"},
		{"TruncatedUTF8", "\xed\x95"}, // first two bytes of 한
		{"PercentEncodedSlash", "%2F"},
		{"BidiOverride", "abc\u202Edef"},
		{"ZeroWidthSpace", "a\u200Bb"},
		{"QueryChars", "a?b=c"},
		{"HTML", "<b>"},
		{"Emoji", "🚀"},
	} {
		t.Run("Bad/"+tc.name, func(t *testing.T) {
			err := chat.ValidateRoom(tc.room)
			if err == nil {
				t.Fatalf("ValidateRoom(%q) = nil, want an error", tc.room)
			}
			checkReason(t, err, "room name ")
		})
	}
	for _, tc := range []struct{ name, room, mention string }{
		// Characters that render as nothing, alone and inside a name: a
		// link to such a room would show no text, or the text of another.
		{"HangulFiller", "\u3164", "invisible character (U+3164)"},
		// One name, one spelling: "é" decomposed looks like "é" composed.
		{"Decomposed", "cafe\u0301", "not in composed form (Unicode NFC); \"caf\u00e9\""},
		{"DecomposedHangul", "\u1112\u1161\u11AB", "not in composed form"},
		{"Zalgo", "a" + strings.Repeat("\u0301", chat.MaxMarks+1), "more than 8 combining marks in a row (U+0301)"},
		{"HangulChoseongFiller", "\u115F", "invisible character (U+115F)"},
		{"HangulJungseongFiller", "\u1160", "invisible character (U+1160)"},
		{"HalfwidthHangulFiller", "\uFFA0", "invisible character (U+FFA0)"},
		{"HangulFillers", "\u3164\u115F\u1160\uFFA0", "invisible character (U+3164)"},
		{"HangulFillerInside", "한\u3164국어", "invisible character (U+3164)"},
		{"HangulFillerAfter", "lobby\u3164", "invisible character (U+3164)"},
		{"ChoseongFillerInside", "team\u115F7", "invisible character (U+115F)"},
		{"JungseongFillerInside", "a\u1160b", "invisible character (U+1160)"},
		{"HalfwidthFillerBefore", "\uFFA0lobby", "invisible character (U+FFA0)"},
		{"ZeroWidthSpaceReason", "a\u200Bb", "invisible character (U+200B)"},
		{"ZeroWidthJoiner", "a\u200Db", "invisible character (U+200D)"},
		{"WordJoiner", "lob\u2060by", "invisible character (U+2060)"},
		{"BOM", "\uFEFFlobby", "invisible character (U+FEFF)"},
		{"SoftHyphen", "lob\u00ADby", "invisible character (U+00AD)"},
		{"CombiningGraphemeJoiner", "a\u034F", "invisible character (U+034F)"},
		{"VariationSelector", "lobby\uFE0F", "invisible character (U+FE0F)"},
		{"VariationSelectorSupplement", "a\U000E01EF", "invisible character (U+E01EF)"},
		{"MongolianFVS", "\u1820\u180F", "invisible character (U+180F)"},
		{"KhmerInherent", "\u1780\u17B5", "invisible character (U+17B5)"},
		{"TagCharacters", "lobby\U000E006C\U000E006F", "invisible character (U+E006C)"},
		{"BrailleBlank", "\u2800", "invisible character (U+2800)"},
		{"BrailleBlankInside", "a\u2800b", "invisible character (U+2800)"},
		{"BidiOverrideReason", "abc\u202Edef", `room name contains '\u202e'`}, // as before; handlers' tests rely on it
		// A combining mark belongs on a letter or digit: not on nothing,
		// not on "-", "_" or ".". ("room name contains '\u0301'" as
		// before: handlers' tests rely on it.)
		{"LeadingMark", "\u0301a", "room name contains '\u0301' (U+0301), a combining mark that does not follow a letter or digit"},
		{"LeadingVowelSign", "\u093Fहंदी", "'\u093F' (U+093F), a combining mark that does not follow a letter or digit"},
		{"MarkAfterDash", "a-\u0301", "(U+0301), a combining mark that does not follow a letter or digit"},
		{"MarkAfterUnderscore", "हिंदी_\u093F", "(U+093F), a combining mark that does not follow"},
		{"MarkAfterDot", "v1.\u0303", "(U+0303), a combining mark that does not follow"},
		{"OnlyMark", "\u0301", "(U+0301), a combining mark that does not follow"},
		{"EnclosingMarkAlone", "\u20DD", "(U+20DD), a combining mark that does not follow"},
		// Composing can lengthen a name (U+FB2C is three characters
		// composed): too long a name is not quoted, so the reason stays a
		// short sentence.
		{"DecomposedLong", strings.Repeat("\uFB2C", chat.MaxRoomLen), "room name is not in composed form (Unicode NFC)"},
		{"CompatibilityIdeographs", strings.Repeat("\uF900", chat.MaxRoomLen), "room name is not in composed form (Unicode NFC)"},
		// A character no room name holds speaks before composition.
		{"ControlBeforeNFC", "\uF900\x13", `room name contains '\x13'`},
		{"DecomposedVietnamese", "Tie\u0302\u0301ng", "not in composed form (Unicode NFC); \"Tiếng\""},
		{"ZalgoThroughJoiner", "a" + strings.Repeat(strings.Repeat("\u0301", chat.MaxMarks)+"\u200D", 3), "more than 8 combining marks in a row (U+0301)"},
		// Compatibility forms: another presentation of plain text, which
		// would list beside the plain room as though it were it.
		{"Fullwidth", "ｌｏｂｂｙ", `room name contains 'ｌ' (U+FF4C), a compatibility form of "l"; use the plain character`},
		{"FullwidthDigits", "１２３", `room name contains '１' (U+FF11), a compatibility form of "1"; use the plain character`},
		{"FullwidthInside", "lobｂy", `'ｂ' (U+FF42), a compatibility form of "b"`},
		{"MathBold", "𝐥𝐨𝐛𝐛𝐲", `'𝐥' (U+1D425), a compatibility form of "l"`},
		{"MathDoubleStruck", "𝕝obby", `'𝕝' (U+1D55D), a compatibility form of "l"`},
		{"Ligature", "ﬁsh", `room name contains 'ﬁ' (U+FB01), a compatibility form of "fi"; use the plain characters`},
		{"Superscript", "x²", `'²' (U+00B2), a compatibility form of "2"`},
		{"Subscript", "h₂o", `'₂' (U+2082), a compatibility form of "2"`},
		{"ModifierLetter", "ʰi", `'ʰ' (U+02B0), a compatibility form of "h"`},
		{"Circled", "ⓛobby", `'ⓛ' (U+24DB), a compatibility form of "l"`},
		{"RomanNumeral", "Ⅻ", `'Ⅻ' (U+216B), a compatibility form of "XII"; use the plain characters`},
		{"LongS", "ſun", `'ſ' (U+017F), a compatibility form of "s"`},
		{"Ordinal", "1ª", `'ª' (U+00AA), a compatibility form of "a"`},
		{"Digraph", "ǆungla", `'ǆ' (U+01C6), a compatibility form of "dž"`},
		{"HalfwidthKatakana", "ｶﾀｶﾅ", `'ｶ' (U+FF76), a compatibility form of "カ"`},
		{"HalfwidthHangul", "ﾾ", "(U+FFBE), a compatibility form of \"\u1112\""}, // the conjoining jamo; the compatibility jamo ㅎ would do too
		{"ArabicPresentationForm", "\uFEE1\uFEE4", `(U+FEE1), a compatibility form of "م"`},
		{"GreekBetaSymbol", "ϐ", `'ϐ' (U+03D0), a compatibility form of "β"`},
		{"SquareKatakana", "㌔", `'㌔' (U+3314), a compatibility form of "キロ"`},
		// Compatibility forms whose plain text is no room name either
		// get the general reason.
		{"Parenthesized", "⒧obby", `room name contains '⒧'; use letters, digits, '-', '_' or '.'`},
		{"NoBreakSpace", "a\u00A0b", `room name contains '\u00a0'; use letters, digits, '-', '_' or '.'`},
		{"IdeographicSpace", "a\u3000b", `room name contains '\u3000'; use letters, digits, '-', '_' or '.'`},
		{"FullwidthFullStops", "\uFF0E\uFF0E", `room name contains '．' (U+FF0E), a compatibility form of "."`},
		// Already not composed: the NFC check speaks first.
		{"AngstromSign", "\u212B", "not in composed form"},
		{"KelvinSign", "\u212Aelvin", "not in composed form"},
		// Letters of scripts mixed to imitate a word.
		{"LatinAndCyrillic", "pаypal", "mixes Latin and Cyrillic letters (U+0430)"},
		{"LatinAndGreek", "lobby-Ελλάδα", "mixes Latin and Greek letters (U+0395)"},
		{"CyrillicAndLatin", "Москва-city", "mixes Cyrillic and Latin letters (U+0063)"},
		{"FourScripts", "Ελληνικά_日本語-العربية", "mixes Greek and Han letters (U+65E5)"},
		{"KoreanAndKana", "한국어-にほんご", "mixes Hangul and Hiragana letters (U+306B)"},
		{"LatinAndCherokee", "lobby-ᏣᎳᎩ", "mixes Latin and Cherokee letters (U+13E3)"},
	} {
		t.Run("Bad/"+tc.name, func(t *testing.T) {
			err := chat.ValidateRoom(tc.room)
			if err == nil {
				t.Fatalf("ValidateRoom(%q) = nil, want an error", tc.room)
			}
			checkReason(t, err, "room name ")
			if r := chat.Reason(err); !strings.Contains(r, tc.mention) {
				t.Errorf("Reason = %q, want it to mention %q", r, tc.mention)
			}
		})
	}
}

// TestInvisibleMatchesUnicode checks, through ValidateRoom, that the
// characters refused as invisible are exactly Default_Ignorable_Code_Point
// as Unicode lists it, plus the blank symbols (bidi controls, which are
// default-ignorable too, are refused under their escape, as before).
func TestInvisibleMatchesUnicode(t *testing.T) {
	if testing.Short() {
		t.Skip("looks at all 1,114,112 code points")
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if utf8.ValidRune(r) {
			err := chat.ValidateRoom(string(r))
			said := err != nil && strings.Contains(chat.Reason(err), "invisible character")
			if isBidiControl(r) {
				// Refused by name, as before: `room name contains '\u202e'`.
				said = err != nil && strings.Contains(chat.Reason(err), fmt.Sprintf("%q", r))
			}
			if want := invisibleModel(r); said != want {
				t.Errorf("ValidateRoom(%q): invisible %v, want %v", r, said, want)
			}
		}
	}
}

// TestCompatMatchesUnicode checks, through ValidateRoom, that the
// characters refused as compatibility forms are exactly those compatModel
// (fuzz_test.go) names, and that each is refused.
func TestCompatMatchesUnicode(t *testing.T) {
	if testing.Short() {
		t.Skip("looks at all 1,114,112 code points")
	}
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		s := string(r)
		if !utf8.ValidRune(r) || invisibleModel(r) || norm.NFC.String(s) != s {
			continue // refused as invisible or not composed first
		}
		err := chat.ValidateRoom(s)
		said := err != nil && strings.Contains(chat.Reason(err), "a compatibility form of")
		if want := compatModel(r); want && err == nil {
			t.Errorf("ValidateRoom(%+q) = nil, want a compatibility form refused", r)
		} else if said && !want {
			t.Errorf("ValidateRoom(%+q) = %v, but %+q is no compatibility form", r, err, r)
		}
	}
}

func TestValidateRoomReasonSaysWhy(t *testing.T) {
	for _, tc := range []struct{ room, want string }{
		{"", "empty"},
		{"..", "reserved"},
		{"a b", "space"},
		{"a/b", "'/'"},
		{strings.Repeat("방", 65), "65 characters"},
		{"\xff", "UTF-8"},
	} {
		if got := chat.Reason(chat.ValidateRoom(tc.room)); !strings.Contains(got, tc.want) {
			t.Errorf("Reason(ValidateRoom(%q)) = %q, want it to mention %q", tc.room, got, tc.want)
		}
	}
}

func TestNormalizeText(t *testing.T) {
	korean2000 := strings.Repeat("가", chat.MaxMessageLen)
	for _, tc := range []struct{ name, in, want string }{
		{"Plain", "hello", "hello"},
		{"TrimSpaces", "  hello  ", "hello"},
		{"TrimNewlinesTabs", "\n\t hello \t\n", "hello"},
		{"TrimUnicodeSpace", "\u3000안녕\u00a0", "안녕"},
		{"CRLF", "a\r\nb", "a\nb"},
		{"LoneCR", "a\rb", "a\nb"},
		{"MixedLineEnds", "a\r\nb\rc\nd", "a\nb\nc\nd"},
		{"BlankLines", "a\r\n\r\nb", "a\n\nb"},
		{"CRNotDoubled", "a\r\r\nb", "a\n\nb"},
		{"TrailingCRLFTrimmed", "hi\r\n", "hi"},
		{"TabAndNewlineKept", "a\tb\nc", "a\tb\nc"},
		{"InnerSpacesKept", "a   b", "a   b"},
		{"Unicode", "안녕하세요 👋🏽", "안녕하세요 👋🏽"},
		{"HTMLUntouched", "<b>&amp;</b>", "<b>&amp;</b>"},
		{"MaxLenASCII", strings.Repeat("a", chat.MaxMessageLen), strings.Repeat("a", chat.MaxMessageLen)},
		{"MaxLenKorean", korean2000, korean2000}, // 6000 bytes, 2000 characters
		{"MaxLenAfterTrim", "   " + korean2000 + "\n\n", korean2000},
		{"MaxLenAfterCRLF", strings.Repeat("a\r\n", chat.MaxMessageLen/2-1) + "ab", strings.Repeat("a\n", chat.MaxMessageLen/2-1) + "ab"},
		// Invisible characters beside visible ones stay.
		{"EmojiZWJSequence", "👩\u200D👩\u200D👧\u200D👦", "👩\u200D👩\u200D👧\u200D👦"},
		{"EmojiVariationSelector", "❤\uFE0F", "❤\uFE0F"},
		{"ZeroWidthSpaceInside", "a\u200Bb", "a\u200Bb"},
		{"LeadingZeroWidthSpaceKept", "\u200Bhi", "\u200Bhi"},
		{"HangulFillerWithText", "안녕\u3164", "안녕\u3164"},
		{"BrailleBlankWithText", "\u2800\u2800a", "\u2800\u2800a"},
		{"VisibleFormatCharacter", "\u0600", "\u0600"}, // ARABIC NUMBER SIGN is drawn
		{"CombiningMarkOnly", "\u0301", "\u0301"},
		{"MarksUpToLimit", "a" + strings.Repeat("\u0301", chat.MaxMarks) + " ok", "a" + strings.Repeat("\u0301", chat.MaxMarks) + " ok"},
		// An invisible character neither counts as a mark nor ends a row
		// of them: up to the limit in all is fine.
		{"MarksUpToLimitThroughJoiner", "x" + strings.Repeat("\u0301", 4) + "\u200D" + strings.Repeat("\u0301", 4), "x" + strings.Repeat("\u0301", 4) + "\u200D" + strings.Repeat("\u0301", 4)},
		// A letter, a space or a drawn format character starts a new row.
		{"MarksResetByLetter", "x" + strings.Repeat("\u0301", chat.MaxMarks) + "y" + strings.Repeat("\u0301", chat.MaxMarks), "x" + strings.Repeat("\u0301", chat.MaxMarks) + "y" + strings.Repeat("\u0301", chat.MaxMarks)},
		{"MarksResetBySpace", "x" + strings.Repeat("\u0301", chat.MaxMarks) + " " + strings.Repeat("\u0301", chat.MaxMarks), "x" + strings.Repeat("\u0301", chat.MaxMarks) + " " + strings.Repeat("\u0301", chat.MaxMarks)},
		{"MarksResetByArabicNumberSign", "x" + strings.Repeat("\u0301", chat.MaxMarks) + "\u0600" + strings.Repeat("\u0301", chat.MaxMarks), "x" + strings.Repeat("\u0301", chat.MaxMarks) + "\u0600" + strings.Repeat("\u0301", chat.MaxMarks)},
		{"ThaiWithMarks", "สวัสดี น้ำ", "สวัสดี น้ำ"},
	} {
		t.Run("OK/"+tc.name, func(t *testing.T) {
			got, err := chat.NormalizeText(tc.in)
			if err != nil {
				t.Fatalf("NormalizeText(%.40q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeText(%.40q) = %.40q, want %.40q", tc.in, got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in, mention string }{
		{"Empty", "", "empty"},
		{"Spaces", "   ", "empty"},
		{"WhitespaceOnly", " \t\r\n\u3000 ", "empty"},
		{"Zalgo", "he" + strings.Repeat("\u0337\u0334", 100) + "llo", "more than 8 combining marks in a row (U+0337)"},
		// Invisible characters between marks keep them on one character:
		// they neither count nor end the row.
		{"ZalgoThroughZWJ", "a" + strings.Repeat(strings.Repeat("\u0301", chat.MaxMarks)+"\u200D", 30), "more than 8 combining marks in a row (U+0301)"},
		{"CRLFOnly", "\r\n\r\n", "empty"},
		{"TooLongASCII", strings.Repeat("a", chat.MaxMessageLen+1), "2001"},
		// 6003 bytes: the limit counts characters, and the reason says so.
		{"TooLongKorean", strings.Repeat("가", chat.MaxMessageLen+1), "2001 characters"},
		{"InvalidUTF8", "hi \xff", "UTF-8"},
		{"TruncatedUTF8", "hi \xed\x95", "UTF-8"},
		{"InvalidUTF8OnlySpaceAround", " \xc3 ", "UTF-8"},
		{"NUL", "a\x00b", "control"},
		{"OnlyNUL", "\x00", "control"},
		{"Escape", "\x1b[31mred", "control"},
		{"Bell", "ding\a", "control"},
		{"Backspace", "ab\bc", "control"},
		{"VerticalTabInside", "a\vb", "control"},
		{"FormFeedInside", "a\fb", "control"},
		{"DEL", "a\x7fb", "control"},
		{"C1Control", "a\u0085b", "control"},
		{"C1CSI", "a\u009bb", "control"},
		// Nothing that renders: invisible characters and white space only.
		{"ZeroWidthSpace", "\u200B", "blank"},
		{"ZeroWidthMix", "\u200B\u200C\u200D", "blank"},
		{"ZWJAndSpaces", " \u200D \n\u200D\t", "blank"},
		{"BOM", "\uFEFF", "blank"},
		{"WordJoinerLines", "\u2060\n\u2060", "blank"},
		{"HangulFiller", "\u3164", "blank: it has only invisible characters (U+3164)"},
		{"HangulFillerPadded", " \u3164 ", "blank: it has only invisible characters (U+3164)"},
		{"HangulFillers", "\u115F\u1160\u3164\uFFA0", "blank: it has only invisible characters (U+115F)"},
		{"HalfwidthHangulFiller", "\uFFA0", "blank: it has only invisible characters (U+FFA0)"},
		{"SoftHyphen", "\u00AD", "blank"},
		{"CombiningGraphemeJoiner", "\u034F", "blank"},
		{"VariationSelector", "\uFE0F", "blank"},
		{"TagCharacters", "\U000E0067\U000E0062", "blank"},
		{"BrailleBlank", "\u2800\u2800", "blank"},
		{"BrailleBlankAndIdeographicSpace", "\u2800\u3000\u2800", "blank"},
		{"BidiControlsOnly", "\u202E\u2066\u2069", "blank"},
		{"MongolianVowelSeparator", "\u180E", "blank"},
		{"ControlBeatsBlank", "\u200B\x00", "control"},
	} {
		t.Run("Bad/"+tc.name, func(t *testing.T) {
			got, err := chat.NormalizeText(tc.in)
			if err == nil {
				t.Fatalf("NormalizeText(%.40q) = %.40q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("NormalizeText(%.40q) returned text %.40q with its error, want \"\"", tc.in, got)
			}
			checkReason(t, err, "message ")
			if r := chat.Reason(err); !strings.Contains(r, tc.mention) {
				t.Errorf("Reason = %q, want it to mention %q", r, tc.mention)
			}
		})
	}
}

// TestMarkPileThroughInvisible checks that no invisible or other
// space-less format character splits a pile of combining marks in two:
// MaxMarks marks, the character, one more mark is one too many, in a
// message, a room name and a display name alike.
func TestMarkPileThroughInvisible(t *testing.T) {
	marks := strings.Repeat("\u0301", chat.MaxMarks)
	for _, tc := range []struct {
		name string
		r    rune
	}{
		{"ZWJ", '\u200D'}, {"ZWNJ", '\u200C'}, {"ZWSP", '\u200B'}, {"WordJoiner", '\u2060'},
		{"CGJ", '\u034F'}, {"VS16", '\uFE0F'}, {"VS1", '\uFE00'}, {"VSSupplement", '\U000E0100'},
		{"SoftHyphen", '\u00AD'}, {"BOM", '\uFEFF'}, {"RLO", '\u202E'}, {"LRM", '\u200E'},
		{"TagLetter", '\U000E0061'}, {"MongolianFVS", '\u180B'}, {"HangulFiller", '\u3164'},
		{"BrailleBlank", '\u2800'}, {"InvisibleTimes", '\u2062'}, {"InterlinearAnchor", '\uFFF9'},
		{"EgyptianJoiner", '\U00013430'},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := "x" + marks + string(tc.r) + "\u0301"
			want := "more than 8 combining marks in a row (U+0301)"
			if _, err := chat.NormalizeText(in); err == nil || !strings.Contains(chat.Reason(err), want) {
				t.Errorf("NormalizeText(%+q) = %v, want an error that mentions %q", in, err, want)
			}
			if err := chat.ValidateRoom(in); err == nil || !strings.Contains(chat.Reason(err), want) {
				t.Errorf("ValidateRoom(%+q) = %v, want an error that mentions %q", in, err, want)
			}
			if _, err := chat.NormalizeName(in); err == nil || !strings.Contains(chat.Reason(err), want) {
				t.Errorf("NormalizeName(%+q) = %v, want an error that mentions %q", in, err, want)
			}
			// Many of them are still one pile.
			many := "x" + strings.Repeat("\u0301"+string(tc.r), chat.MaxMarks+1)
			if _, err := chat.NormalizeText(many); err == nil {
				t.Errorf("NormalizeText(%+q) = nil error, want the pile refused", many)
			}
		})
	}
}

func TestNormalizeTextIdempotent(t *testing.T) {
	for _, in := range []string{" a\r\nb ", "x\ty", "안녕\r", strings.Repeat("가\r\n", 600)} {
		once, err := chat.NormalizeText(in)
		if err != nil {
			t.Fatalf("NormalizeText(%.40q): %v", in, err)
		}
		twice, err := chat.NormalizeText(once)
		if err != nil {
			t.Fatalf("NormalizeText(NormalizeText(%.40q)): %v", in, err)
		}
		if twice != once {
			t.Errorf("NormalizeText not idempotent on %.40q: %.40q then %.40q", in, once, twice)
		}
	}
}

func TestReason(t *testing.T) {
	roomErr := chat.ValidateRoom("")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Direct", roomErr, "room name is empty"},
		{"Wrapped", fmt.Errorf("post to %q: %w", "", roomErr), "room name is empty"},
		{"WrappedTwice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", roomErr)), "room name is empty"},
		{"OtherError", errors.New("disk full"), "disk full"},
		{"Closed", fmt.Errorf("append to %q: %w", "lobby", chat.ErrClosed), `append to "lobby": closed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := chat.Reason(tc.err); got != tc.want {
				t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// defaultIgnorable is Default_Ignorable_Code_Point as Unicode 15.0's
// DerivedCoreProperties.txt lists it, copied here rather than derived, so
// that it checks chat's derivation from the property tables.
var defaultIgnorable = [][2]rune{
	{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x061C, 0x061C}, {0x115F, 0x1160},
	{0x17B4, 0x17B5}, {0x180B, 0x180F}, {0x200B, 0x200F}, {0x202A, 0x202E},
	{0x2060, 0x206F}, {0x3164, 0x3164}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
	{0xFFA0, 0xFFA0}, {0xFFF0, 0xFFF8}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
	{0xE0000, 0xE0FFF},
}

// invisibleModel is the rule for characters that render as nothing:
// Default_Ignorable_Code_Point, U+2800 BRAILLE PATTERN BLANK and U+1D159
// MUSICAL SYMBOL NULL NOTEHEAD.
func invisibleModel(r rune) bool {
	for _, rg := range defaultIgnorable {
		if rg[0] <= r && r <= rg[1] {
			return true
		}
	}
	return r == 0x2800 || r == 0x1D159
}

// scriptsModel returns the scripts of the characters of s in the order they
// first appear, Common and Inherited left out, by a plain search of
// unicode.Scripts.
func scriptsModel(s string) []string {
	var out []string
	for _, r := range s {
		for name, table := range unicode.Scripts {
			if name != "Common" && name != "Inherited" && unicode.Is(table, r) && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// scriptsAllowedModel is UTS #39's "moderately restrictive" level: one
// script, or all within Latin+Han+Hiragana+Katakana, Latin+Han+Bopomofo or
// Latin+Han+Hangul, or Latin and one other recommended script (UAX #31
// Table 4) other than Cyrillic and Greek.
func scriptsAllowedModel(scripts []string) bool {
	within := func(set ...string) bool {
		for _, s := range scripts {
			if !slices.Contains(set, s) {
				return false
			}
		}
		return true
	}
	recommended := strings.Fields("Arabic Armenian Bengali Bopomofo Devanagari Ethiopic Georgian Gujarati Gurmukhi " +
		"Han Hangul Hebrew Hiragana Kannada Katakana Khmer Lao Malayalam Myanmar Oriya Sinhala Tamil Telugu Thaana Thai Tibetan")
	switch {
	case len(scripts) <= 1,
		within("Latin", "Han", "Hiragana", "Katakana"),
		within("Latin", "Han", "Bopomofo"),
		within("Latin", "Han", "Hangul"):
		return true
	case len(scripts) == 2 && scripts[0] == "Latin":
		return slices.Contains(recommended, scripts[1])
	case len(scripts) == 2 && scripts[1] == "Latin":
		return slices.Contains(recommended, scripts[0])
	}
	return false
}

// isBidiControl reports whether r is one of the bidirectional controls
// (UAX #9): ALM, LRM, RLM, LRE..RLO, LRI..PDI.
func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || 0x202A <= r && r <= 0x202E || 0x2066 <= r && r <= 0x2069
}
