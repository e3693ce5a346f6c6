package views

import (
	"context"
	"html"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/a-h/templ"
)

// LinkRel is the rel of every link made from a message: the links are
// user-generated and must neither pass ranking nor see the room's window.
const LinkRel = "nofollow noopener noreferrer ugc"

// LinkClass is the class of every link made from a message (styled so that
// long URLs wrap).
const LinkClass = "link"

// Segment is a piece of a message's text: plain text when URL is "", else a
// link whose visible text is Text and whose href is URL.
type Segment struct {
	Text string
	URL  string
}

// Linkify renders a message's text as HTML: the text escaped, and every
// http:// or https:// URL in it as a link that opens in a new tab,
//
//	<a href="URL" class="link" rel="nofollow noopener noreferrer ugc" target="_blank">URL</a>
//
// with href and text escaped. Nothing else in the text becomes markup. See
// SplitLinks for what counts as a URL.
func Linkify(text string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		return writeLinks(w, text)
	})
}

func writeLinks(w io.Writer, text string) error {
	var b strings.Builder
	b.Grow(len(text) + len(text)/8)
	for _, s := range SplitLinks(text) {
		if s.URL == "" {
			b.WriteString(html.EscapeString(s.Text))
			continue
		}
		b.WriteString(`<a href="`)
		b.WriteString(html.EscapeString(s.URL))
		b.WriteString(`" class="` + LinkClass + `" rel="` + LinkRel + `" target="_blank">`)
		b.WriteString(html.EscapeString(s.Text))
		b.WriteString(`</a>`)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// SplitLinks splits text into plain text and links; concatenating the
// segments' Text gives text back. Adjacent plain text is one segment.
//
// A link starts with http:// or https:// (the scheme in any case) at the
// start of the text or after a character that is not a letter or digit, and
// runs until whitespace, a control character, one of < > " ` or invalid
// UTF-8. Trailing . , ; : ! ? ' and closing brackets ) ] } that have no
// opening partner inside the URL are left outside it. Its host must contain
// a letter or digit and the URL must parse (net/url) with a host, else it is
// text. The link's URL is the text with the scheme lowercased.
//
// The scan is linear in len(text).
func SplitLinks(text string) []Segment {
	var out []Segment
	plain := 0 // start of the pending plain text
	i := 0
	for i < len(text) {
		n := schemeAt(text, i)
		if n == 0 {
			i++
			continue
		}
		// The authority: up to the path, query or fragment, or a stop.
		a := i + n
		hostOK := false
		for a < len(text) {
			r, size := utf8.DecodeRuneInString(text[a:])
			if r == '/' || r == '?' || r == '#' || stops(r, size) {
				break
			}
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				hostOK = true
			}
			a += size
		}
		if !hostOK {
			// The authority has no letters, so no scheme starts in it.
			i = a
			continue
		}
		end := a
		for end < len(text) {
			r, size := utf8.DecodeRuneInString(text[end:])
			if stops(r, size) {
				break
			}
			end += size
		}
		end = trimTrailing(text, i, end)
		raw := text[i:end]
		href := strings.ToLower(raw[:n]) + raw[n:]
		if validLink(href) {
			if plain < i {
				out = append(out, Segment{Text: text[plain:i]})
			}
			out = append(out, Segment{Text: raw, URL: href})
			plain = end
		}
		// A URL that does not parse stays text whole: nothing inside it is
		// scanned again, which keeps the scan linear.
		i = end
	}
	if plain < len(text) {
		out = append(out, Segment{Text: text[plain:]})
	}
	return out
}

// schemeAt returns the length of "http://" or "https://" (any case) at
// text[i:] when it starts there at a word start, else 0.
func schemeAt(text string, i int) int {
	if c := text[i]; c != 'h' && c != 'H' {
		return 0
	}
	var n int
	switch {
	case hasPrefixFold(text[i:], "https://"):
		n = len("https://")
	case hasPrefixFold(text[i:], "http://"):
		n = len("http://")
	default:
		return 0
	}
	if i > 0 {
		r, _ := utf8.DecodeLastRuneInString(text[:i])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return 0
		}
	}
	return n
}

// hasPrefixFold is strings.HasPrefix with ASCII case folding; prefix is
// lowercase ASCII.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for j := 0; j < len(prefix); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[j] {
			return false
		}
	}
	return true
}

// stops reports whether the rune r (of size bytes) ends a URL.
func stops(r rune, size int) bool {
	switch r {
	case '<', '>', '"', '`':
		return true
	case utf8.RuneError:
		return size <= 1 // invalid UTF-8
	}
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

// trimTrailing returns the end of the URL text[start:end] without its
// trailing punctuation and unbalanced closing brackets.
func trimTrailing(text string, start, end int) int {
	var open, closed [3]int // ( [ {
	for j := start; j < end; j++ {
		switch text[j] {
		case '(':
			open[0]++
		case '[':
			open[1]++
		case '{':
			open[2]++
		case ')':
			closed[0]++
		case ']':
			closed[1]++
		case '}':
			closed[2]++
		}
	}
	for end > start {
		k := -1
		switch text[end-1] {
		case '.', ',', ';', ':', '!', '?', '\'':
		case ')':
			k = 0
		case ']':
			k = 1
		case '}':
			k = 2
		default:
			return end
		}
		if k >= 0 {
			if closed[k] <= open[k] {
				return end
			}
			closed[k]--
		}
		end--
	}
	return end
}

// validLink reports whether href parses as an http or https URL whose host
// has a letter or digit.
func validLink(href string) bool {
	u, err := url.Parse(href)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return false
	}
	return strings.IndexFunc(u.Hostname(), func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsDigit(r)
	}) >= 0
}
