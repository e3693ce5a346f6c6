package chat

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// This file holds the rules against names that deceive: characters that
// render as nothing, letters of scripts mixed to imitate another word, and
// chosen names that look like a guest's label. They follow Unicode's
// security mechanisms (UTS #39) in a form small enough to read.

// isInvisible reports whether r renders as nothing: a
// Default_Ignorable_Code_Point, or a symbol drawn blank.
//
// Default_Ignorable_Code_Point is derived (UAX #44,
// DerivedCoreProperties.txt) as Other_Default_Ignorable_Code_Point (the
// Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the combining grapheme
// joiner U+034F, Khmer U+17B4 and U+17B5, reserved tag and format ranges),
// plus Variation_Selector, plus the format characters (Cf: U+00AD soft
// hyphen, U+200B..U+200F, U+2060..U+2064, U+FEFF, the tags
// U+E0001..U+E007F…), less the few format characters that are drawn.
func isInvisible(r rune) bool {
	if r < 0x80 {
		return false // ASCII has none; its controls are refused as such
	}
	switch {
	case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r), unicode.Is(unicode.Variation_Selector, r):
		return true
	case unicode.Is(unicode.Cf, r):
		// Drawn, so not default-ignorable: the prepended concatenation
		// marks (U+0600 ARABIC NUMBER SIGN…), the interlinear annotation
		// characters and the Egyptian hieroglyph format controls.
		return !unicode.Is(unicode.Prepended_Concatenation_Mark, r) &&
			!(r >= '\uFFF9' && r <= '\uFFFB') && !(r >= 0x13430 && r <= 0x1343F)
	}
	// Symbols whose glyph is empty by design.
	return r == '\u2800' || r == 0x1D159 // BRAILLE PATTERN BLANK, MUSICAL SYMBOL NULL NOTEHEAD
}

// isCompatForm reports whether the first character of s has a
// compatibility decomposition: its NFKD differs from its NFD. Such a
// character is another presentation of plain text (fullwidth "ｌ",
// mathematical "𝐥", the ligature "ﬁ", superscript "²", circled "ⓛ",
// halfwidth katakana "ｶ", the Roman numeral "Ⅻ"), drawn so like it that a
// room "ｌｏｂｂｙ" passes for "lobby".
func isCompatForm(s string) bool {
	// The decompositions are the tables' own, fully decomposed, so
	// comparing them allocates nothing (checked against NFKD.String and
	// NFD.String for every code point in TestCompatForm). A character with
	// a canonical decomposition has the same one in both.
	k := norm.NFKD.PropertiesString(s).Decomposition()
	if k == nil {
		return false // no decomposition at all, as for most letters
	}
	return string(k) != string(norm.NFD.PropertiesString(s).Decomposition())
}

// keptCompat reports whether r, a compatibility form, is nonetheless how
// its language is written: what its keyboards type and its text is
// spelled with, so refusing it would refuse everyday words. These are the Hangul compatibility jamo U+3131..U+318E
// (Korean users type "ㅎㅎ" and "ㅋㅋ" alone), THAI CHARACTER SARA AM
// U+0E33 ("น้ำ", water), LAO VOWEL SIGN AM U+0EB3, LAO HO NO U+0EDC and HO MO
// U+0EDD ("ໝາ", dog), and ARMENIAN SMALL LIGATURE ECH YIWN U+0587 ("և",
// and; "Երևան").
func keptCompat(r rune) bool {
	switch r {
	case '\u0E33', '\u0EB3', '\u0EDC', '\u0EDD', '\u0587':
		return true
	}
	return r >= '\u3131' && r <= '\u318E'
}

// scriptRange is a run of code points of one script.
type scriptRange struct {
	lo, hi rune
	script string
}

// scriptRanges is unicode.Scripts as one sorted table, for a binary search
// instead of a look through some 160 tables per character. Common and
// Inherited are left out: they go with any script.
var scriptRanges = sync.OnceValue(func() []scriptRange {
	var t []scriptRange
	add := func(lo, hi, stride rune, script string) {
		if stride == 1 {
			t = append(t, scriptRange{lo, hi, script})
			return
		}
		for r := lo; r <= hi; r += stride {
			t = append(t, scriptRange{r, r, script})
		}
	}
	for script, table := range unicode.Scripts {
		if script == "Common" || script == "Inherited" {
			continue
		}
		for _, r := range table.R16 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride), script)
		}
		for _, r := range table.R32 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride), script)
		}
	}
	sort.Slice(t, func(i, j int) bool { return t[i].lo < t[j].lo })
	return t
})

// scriptOf returns the Unicode Script property of r ("Latin", "Han"…), or
// "" for Common, Inherited and unassigned characters.
func scriptOf(r rune) string {
	if r < 0x80 {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return ""
	}
	t := scriptRanges()
	i := sort.Search(len(t), func(i int) bool { return t[i].hi >= r })
	if i < len(t) && t[i].lo <= r {
		return t[i].script
	}
	return ""
}

// recommendedScripts are the scripts in customary modern use (UAX #31,
// Table 4), the only ones UTS #39 lets join Latin in a mixed name.
var recommendedScripts = map[string]bool{
	"Arabic": true, "Armenian": true, "Bengali": true, "Bopomofo": true, "Cyrillic": true,
	"Devanagari": true, "Ethiopic": true, "Georgian": true, "Greek": true, "Gujarati": true,
	"Gurmukhi": true, "Han": true, "Hangul": true, "Hebrew": true, "Hiragana": true,
	"Kannada": true, "Katakana": true, "Khmer": true, "Lao": true, "Latin": true,
	"Malayalam": true, "Myanmar": true, "Oriya": true, "Sinhala": true, "Tamil": true,
	"Telugu": true, "Thaana": true, "Thai": true, "Tibetan": true,
}

// scriptsAllowed reports whether a name may hold letters of all of scripts
// at once, by UTS #39's "moderately restrictive" level: one script;
// Latin, Han, Hiragana and Katakana (Japanese); Latin, Han and Bopomofo
// (Chinese); Latin, Han and Hangul (Korean); or Latin and one other
// recommended script that is not Cyrillic or Greek, the two whose letters
// most often pass for Latin ones. Any subset of an allowed set is allowed.
func scriptsAllowed(scripts []string) bool {
	if len(scripts) <= 1 {
		return true
	}
	for _, set := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		if !slices.ContainsFunc(scripts, func(s string) bool { return !slices.Contains(set, s) }) {
			return true
		}
	}
	if len(scripts) == 2 && slices.Contains(scripts, "Latin") {
		other := scripts[0]
		if other == "Latin" {
			other = scripts[1]
		}
		return recommendedScripts[other] && other != "Cyrillic" && other != "Greek"
	}
	return false
}

// scriptClash checks s against scriptsAllowed, ignoring Common and
// Inherited characters (digits, '-', '_', '.', spaces, most combining
// marks). It returns nil if s passes; otherwise the scripts of s in the
// order they appear, up to the first that breaks the rule, and the
// character that brought that one in.
func scriptClash(s string) ([]string, rune) {
	// At most four scripts pass, so a fifth always clashes; the array
	// keeps the check, made on every room request, off the heap.
	var buf [5]string
	seen := buf[:0]
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "" || slices.Contains(seen, sc) {
			continue
		}
		seen = append(seen, sc)
		// The allowed sets are closed under subsets, so once the
		// scripts so far are refused, no more letters can mend it.
		if !scriptsAllowed(seen) {
			return slices.Clone(seen), r
		}
	}
	return nil, 0
}

// scriptList names scripts for a person: "Latin and Cyrillic", "Latin,
// Han and Cyrillic".
func scriptList(scripts []string) string {
	if len(scripts) < 2 {
		return strings.Join(scripts, "")
	}
	return strings.Join(scripts[:len(scripts)-1], ", ") + " and " + scripts[len(scripts)-1]
}

// guestLookalikes maps letters that can pass for g, u, e, s or t, in the
// case-folded form skeleton sees them, to that letter. Most come from
// Unicode's confusables.txt (UTS #39); the Latin small capitals ɢ, ᴇ and
// ᴛ are added because "ɢᴜᴇꜱᴛ" reads as "guest" too. Compatibility forms
// (fullwidth ｇ, mathematical 𝐠, ſ, ℯ) need no entry: NFKD turns them into
// the ASCII letter first. An entry noted "folded" is the case-folded form
// of the capital that looks like the letter (Greek Ε folds to ε; Cherokee
// capitals, which Unicode's CaseFolding.txt keeps, x/text folds to small
// letters, so both are listed).
var guestLookalikes = map[rune]rune{
	// g
	'\u018D': 'g', // ƍ LATIN SMALL LETTER TURNED DELTA
	'\u0261': 'g', // ɡ LATIN SMALL LETTER SCRIPT G
	'\u0262': 'g', // ɢ LATIN LETTER SMALL CAPITAL G
	'\u050D': 'g', // ԍ CYRILLIC SMALL LETTER KOMI SJE (folded Ԍ)
	'\u0581': 'g', // ց ARMENIAN SMALL LETTER CO
	'\u13C0': 'g', // Ꮐ CHEROKEE LETTER NAH
	'\uAB90': 'g', // ꮐ CHEROKEE SMALL LETTER NAH (folded Ꮐ)
	'\u13F3': 'g', // Ᏻ CHEROKEE LETTER YU
	'\u13FB': 'g', // ᏻ CHEROKEE SMALL LETTER YU (folded Ᏻ)
	'\u1D83': 'g', // ᶃ LATIN SMALL LETTER G WITH PALATAL HOOK
	'\uA4D6': 'g', // ꓖ LISU LETTER GA
	// u
	'\u028B': 'u', // ʋ LATIN SMALL LETTER V WITH HOOK
	'\u03C5': 'u', // υ GREEK SMALL LETTER UPSILON
	'\u057D': 'u', // ս ARMENIAN SMALL LETTER SEH (and folded Ս)
	'\u1200': 'u', // ሀ ETHIOPIC SYLLABLE HA
	'\u144C': 'u', // ᑌ CANADIAN SYLLABICS TE
	'\u1D1C': 'u', // ᴜ LATIN LETTER SMALL CAPITAL U
	'\uA4F4': 'u', // ꓴ LISU LETTER U
	'\uA79F': 'u', // ꞟ LATIN SMALL LETTER VOLAPUK UE
	'\uAB4E': 'u', // ꭎ LATIN SMALL LETTER U WITH SHORT RIGHT LEG
	'\uAB52': 'u', // ꭒ LATIN SMALL LETTER U WITH LEFT HOOK
	0x104F6:  'u', // 𐓶 OSAGE SMALL LETTER U (and folded 𐓎)
	0x118D8:  'u', // 𑣘 WARANG CITI SMALL LETTER PU (and folded 𑢸)
	0x16F42:  'u', // 𖽂 MIAO LETTER WA
	// e
	'\u03B5': 'e', // ε GREEK SMALL LETTER EPSILON (folded Ε)
	'\u0435': 'e', // е CYRILLIC SMALL LETTER IE (and folded Е)
	'\u04BD': 'e', // ҽ CYRILLIC SMALL LETTER ABKHASIAN CHE
	'\u13AC': 'e', // Ꭼ CHEROKEE LETTER GV
	'\uAB7C': 'e', // ꭼ CHEROKEE SMALL LETTER GV (folded Ꭼ)
	'\u1D07': 'e', // ᴇ LATIN LETTER SMALL CAPITAL E
	'\u2D39': 'e', // ⴹ TIFINAGH LETTER YADD
	'\uA4F0': 'e', // ꓰ LISU LETTER E
	'\uAB32': 'e', // ꬲ LATIN SMALL LETTER BLACKLETTER E
	0x10286:  'e', // 𐊆 LYCIAN LETTER I
	// s
	'\u01BD': 's', // ƽ LATIN SMALL LETTER TONE FIVE
	'\u0455': 's', // ѕ CYRILLIC SMALL LETTER DZE (and folded Ѕ)
	'\u057F': 's', // տ ARMENIAN SMALL LETTER TIWN (folded Տ)
	'\u13D5': 's', // Ꮥ CHEROKEE LETTER DE
	'\uABA5': 's', // ꮥ CHEROKEE SMALL LETTER DE (folded Ꮥ)
	'\u13DA': 's', // Ꮪ CHEROKEE LETTER DU
	'\uABAA': 's', // ꮪ CHEROKEE SMALL LETTER DU (folded Ꮪ)
	'\uA4E2': 's', // ꓢ LISU LETTER SA
	'\uA731': 's', // ꜱ LATIN LETTER SMALL CAPITAL S
	0x10296:  's', // 𐊖 LYCIAN LETTER S
	0x10448:  's', // 𐑈 DESERET SMALL LETTER ZHEE (and folded 𐐠)
	0x16F3A:  's', // 𖼺 MIAO LETTER SA
	// t
	'\u03C4': 't', // τ GREEK SMALL LETTER TAU (folded Τ)
	'\u0442': 't', // т CYRILLIC SMALL LETTER TE (folded Т)
	'\u13A2': 't', // Ꭲ CHEROKEE LETTER I
	'\uAB72': 't', // ꭲ CHEROKEE SMALL LETTER I (folded Ꭲ)
	'\u1D1B': 't', // ᴛ LATIN LETTER SMALL CAPITAL T
	'\u2CA7': 't', // ⲧ COPTIC SMALL LETTER TAU (folded Ⲧ)
	'\uA4D4': 't', // ꓔ LISU LETTER TA
	0x10297:  't', // 𐊗 LYCIAN LETTER T
	0x102B1:  't', // 𐊱 CARIAN LETTER C-18
	0x10315:  't', // 𐌕 OLD ITALIC LETTER TE
	0x16F0A:  't', // 𖼊 MIAO LETTER TA
}

// fold is full Unicode case folding; a Fold Caser is stateless, so one is
// shared.
var fold = cases.Fold()

// skeleton is the form in which names that look alike compare equal, as
// far as the letters of "guest" go: compatibility-decomposed (NFKD, so
// "ｇ", "𝐠" and "ſ" become "g" and "s"), case-folded, stripped of
// combining marks ("ģ" is "g"), with guestLookalikes mapped to their
// ASCII letter.
func skeleton(s string) string {
	s = norm.NFKD.String(fold.String(norm.NFKD.String(s)))
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.IsMark(r) {
			continue
		}
		if l, ok := guestLookalikes[r]; ok {
			r = l
		}
		b.WriteRune(r)
	}
	return b.String()
}

// looksLikeGuest reports whether name, seen as a skeleton, begins with
// "guest": such names are kept for guests, who are shown as "guest-" and
// four hex digits of their key.
func looksLikeGuest(name string) bool {
	return strings.HasPrefix(skeleton(name), "guest")
}
