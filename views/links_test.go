package views

import (
	"bytes"
	"context"
	"html"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// a is the markup of a link with href and text as they appear in the HTML
// (already escaped).
func a(href, text string) string {
	return `<a href="` + href + `" class="link" rel="nofollow noopener noreferrer ugc" target="_blank">` + text + `</a>`
}

// al is a for a URL whose href and text are the same.
func al(u string) string { return a(u, u) }

func linkify(t testing.TB, text string) string {
	t.Helper()
	var b bytes.Buffer
	if err := Linkify(text).Render(context.Background(), &b); err != nil {
		t.Fatalf("Linkify(%q): %v", text, err)
	}
	return b.String()
}

func TestLinkify(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		// Plain text: escaped, no markup.
		{"Empty", "", ""},
		{"Plain", "hello", "hello"},
		{"Script", `<script>alert("x")</script>`, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`},
		{"Amp", "a & b && c", "a &amp; b &amp;&amp; c"},
		{"Quotes", `it's "quoted"`, `it&#39;s &#34;quoted&#34;`},
		{"Entity", "&lt;b&gt;", "&amp;lt;b&amp;gt;"},
		{"Img", `<img src=x onerror=alert(1)>`, `&lt;img src=x onerror=alert(1)&gt;`},
		{"Newline", "a\nb", "a\nb"},

		// Position.
		{"Alone", "https://a.org", al("https://a.org")},
		{"Start", "https://a.org is it", al("https://a.org") + " is it"},
		{"Middle", "see https://a.org/x now", "see " + al("https://a.org/x") + " now"},
		{"End", "see http://a.org/x", "see " + al("http://a.org/x")},
		{"Two", "https://a.org and http://b.org/y", al("https://a.org") + " and " + al("http://b.org/y")},
		{"TwoAdjacentLines", "https://a.org\nhttps://b.org", al("https://a.org") + "\n" + al("https://b.org")},
		{"NewlineAfter", "https://a.org/x\nnext", al("https://a.org/x") + "\nnext"},
		{"TabAfter", "https://a.org/x\tnext", al("https://a.org/x") + "\tnext"},
		{"NBSPAfter", "https://a.org/x\u00a0next", al("https://a.org/x") + "\u00a0next"},
		{"IdeographicSpaceAfter", "https://a.org/x\u3000次", al("https://a.org/x") + "\u3000次"},

		// Trailing punctuation stays outside.
		{"Dot", "go to https://a.org/x.", "go to " + al("https://a.org/x") + "."},
		{"Comma", "https://a.org/x, then", al("https://a.org/x") + ", then"},
		{"Bang", "https://a.org!", al("https://a.org") + "!"},
		{"Question", "https://a.org/x?", al("https://a.org/x") + "?"},
		{"Colon", "https://a.org/x:", al("https://a.org/x") + ":"},
		{"Semicolon", "https://a.org/x;", al("https://a.org/x") + ";"},
		{"Apostrophe", "'https://a.org/x'", "&#39;" + al("https://a.org/x") + "&#39;"},
		{"Paren", "(see https://a.org/x)", "(see " + al("https://a.org/x") + ")"},
		{"ParenDot", "https://a.org/x).", al("https://a.org/x") + ")."},
		{"Bracket", "[https://a.org/x]", "[" + al("https://a.org/x") + "]"},
		{"Brace", "{https://a.org/x}", "{" + al("https://a.org/x") + "}"},
		{"Many", "https://a.org/x...!?", al("https://a.org/x") + "...!?"},
		{"BalancedParen", "https://en.wikipedia.org/wiki/Go_(game)", al("https://en.wikipedia.org/wiki/Go_(game)")},
		{"BalancedParenInParens", "(https://en.wikipedia.org/wiki/Go_(game))", "(" + al("https://en.wikipedia.org/wiki/Go_(game)") + ")"},
		{"BalancedParenDot", "https://en.wikipedia.org/wiki/Go_(game).", al("https://en.wikipedia.org/wiki/Go_(game)") + "."},
		{"BalancedBracket", "https://a.org/x[1]", al("https://a.org/x[1]")},
		{"InnerPunctuation", "https://a.org/a.b,c;d!e", al("https://a.org/a.b,c;d!e")},
		{"StarUnderscoreKept", "https://a.org/x_ https://a.org/y*", al("https://a.org/x_") + " " + al("https://a.org/y*")},
		{"SlashKept", "https://a.org/", al("https://a.org/")},

		// Scheme.
		{"Upper", "HTTPS://A.ORG/X", a("https://A.ORG/X", "HTTPS://A.ORG/X")},
		{"Mixed", "Http://a.org", a("http://a.org", "Http://a.org")},
		{"AfterParen", "(http://a.b)", "(" + al("http://a.b") + ")"},
		{"AfterLetter", "xhttp://a.b", "xhttp://a.b"},
		{"AfterDigit", "1https://a.b", "1https://a.b"},
		{"AfterUnicodeLetter", "éhttps://a.b", "éhttps://a.b"},
		{"AfterUnderscore", "_https://a.b", "_" + al("https://a.b")},
		{"AfterEmoji", "🙂https://a.b", "🙂" + al("https://a.b")},
		{"OneSlash", "https:/a.org", "https:/a.org"},
		{"NoSlash", "https:a.org", "https:a.org"},
		{"Bare", "www.a.org a.org", "www.a.org a.org"},
		{"HttpsWithoutColon", "https//a.org", "https//a.org"},

		// No host.
		{"SchemeOnly", "http://", "http://"},
		{"SchemeOnlyS", "https:// x", "https:// x"},
		{"TripleSlash", "http:///x", "http:///x"},
		{"HostDot", "https://.", "https://."},
		{"DotPath", "https://./x", "https://./x"},
		{"PortOnly", "https://:80/", "https://:80/"},
		{"UserOnly", "https://a@/", "https://a@/"},
		{"BadPort", "https://a.org:x/", "https://a.org:x/"},
		{"BadEscape", "https://a.org/%zz", "https://a.org/%zz"},
		{"Backslash", `https://a.org\evil`, `https://a.org\evil`},

		// Other schemes never become markup.
		{"JavaScript", "javascript:alert(1)", "javascript:alert(1)"},
		{"JavaScriptUpper", "JAVASCRIPT:alert(1)", "JAVASCRIPT:alert(1)"},
		{"JavaScriptSlashes", "javascript://a.org/%0aalert(1)", "javascript://a.org/%0aalert(1)"},
		{"Data", "data:text/html,<b>x</b>", "data:text/html,&lt;b&gt;x&lt;/b&gt;"},
		{"VBScript", "vbscript:msgbox(1)", "vbscript:msgbox(1)"},
		{"File", "file:///etc/passwd", "file:///etc/passwd"},
		{"FTP", "ftp://a.org/x", "ftp://a.org/x"},
		{"Mailto", "mailto:a@b.org", "mailto:a@b.org"},
		{"Relative", "//a.org/x", "//a.org/x"},
		{"JavaScriptThenHTTPS", "javascript:alert(1)//https://x.org", "javascript:alert(1)//" + al("https://x.org")},
		{"HTTPSInJavaScriptComment", "javascript:x//https://x.org/'-alert(1)-'", "javascript:x//" + al("https://x.org/&#39;-alert(1)-") + "&#39;"},

		// Stops.
		{"Tag", "https://a.org/<b>", al("https://a.org/") + "&lt;b&gt;"},
		{"Angle", "<https://a.org/x>", "&lt;" + al("https://a.org/x") + "&gt;"},
		{"QuoteBreakout", `https://a.org/"onmouseover="x`, al("https://a.org/") + `&#34;onmouseover=&#34;x`},
		{"QuoteBreakoutInHost", `https://a.org"onmouseover="x`, al("https://a.org") + `&#34;onmouseover=&#34;x`},
		{"Quoted", `"https://a.org/x"`, `&#34;` + al("https://a.org/x") + `&#34;`},
		{"Backtick", "`https://a.org/x`", "`" + al("https://a.org/x") + "`"},
		{"Emoji", "https://a.org/x🙂", al("https://a.org/x🙂")},
		{"EmojiAfterSpace", "https://a.org/x 🙂", al("https://a.org/x") + " 🙂"},

		// Escaping inside the link.
		{"QueryAmpApostrophe", "https://a.org/?a=1&b='2'", a("https://a.org/?a=1&amp;b=&#39;2", "https://a.org/?a=1&amp;b=&#39;2") + "&#39;"},
		{"QueryAmpApostropheMid", "https://a.org/?a=1&b='2'&c=3", al("https://a.org/?a=1&amp;b=&#39;2&#39;&amp;c=3")},

		// Ordinary URLs.
		{"Port", "http://localhost:8080/chat/lobby/", al("http://localhost:8080/chat/lobby/")},
		{"IPv4", "http://127.0.0.1:8080", al("http://127.0.0.1:8080")},
		{"IPv6", "http://[::1]:8080/x", al("http://[::1]:8080/x")},
		{"Query", "https://a.org/s?q=go+lang&page=2", al("https://a.org/s?q=go+lang&amp;page=2")},
		{"Fragment", "https://a.org/doc#section-2.", al("https://a.org/doc#section-2") + "."},
		{"QueryFragment", "https://a.org/?q=1#top", al("https://a.org/?q=1#top")},
		{"Percent", "https://a.org/a%20b", al("https://a.org/a%20b")},
		{"UserInfo", "https://u:p@a.org/", al("https://u:p@a.org/")},
		{"HostWithoutDot", "http://intranet/x", al("http://intranet/x")},
		{"UnicodeHost", "https://bücher.de", al("https://bücher.de")},
		{"UnicodeHostPath", "https://例え.jp/パス を見て", al("https://例え.jp/パス") + " を見て"},
		{"Korean", "링크 https://a.org/한국어 입니다", "링크 " + al("https://a.org/한국어") + " 입니다"},
		{"Long", "https://a.org/" + strings.Repeat("x", 500), al("https://a.org/" + strings.Repeat("x", 500))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := linkify(t, tt.text)
			if got != tt.want {
				t.Errorf("Linkify(%q)\n got %s\nwant %s", tt.text, got, tt.want)
			}
			checkLinkified(t, tt.text, got)
		})
	}
}

func TestSplitLinks(t *testing.T) {
	tests := []struct {
		text string
		want []Segment
	}{
		{"", nil},
		{"hi", []Segment{{Text: "hi"}}},
		{"https://a.org", []Segment{{Text: "https://a.org", URL: "https://a.org"}}},
		{"x HTTP://A.org/Y. y", []Segment{{Text: "x "}, {Text: "HTTP://A.org/Y", URL: "http://A.org/Y"}, {Text: ". y"}}},
		{"http:// and javascript:x", []Segment{{Text: "http:// and javascript:x"}}},
		{"(https://a.org/x) https://b.org", []Segment{
			{Text: "("}, {Text: "https://a.org/x", URL: "https://a.org/x"}, {Text: ") "},
			{Text: "https://b.org", URL: "https://b.org"},
		}},
	}
	for _, tt := range tests {
		got := SplitLinks(tt.text)
		if len(got) != len(tt.want) {
			t.Errorf("SplitLinks(%q) = %+v, want %+v", tt.text, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("SplitLinks(%q) = %+v, want %+v", tt.text, got, tt.want)
				break
			}
		}
	}
}

// TestLinkifyRepeatedScheme is the worst case of the scan: 2000 characters
// of schemes. The output is checked, not timed (BenchmarkLinkify times it).
func TestLinkifyRepeatedScheme(t *testing.T) {
	t.Run("Joined", func(t *testing.T) {
		// One URL: its host is "http:" (host "http", empty port).
		text := strings.Repeat("http://", 2000/7)
		if got, want := linkify(t, text), al(text); got != want {
			t.Errorf("got %.200s..., want one link of the whole text", got)
		}
	})
	t.Run("Spaced", func(t *testing.T) {
		text := strings.Repeat("http:// ", 250)
		if got := linkify(t, text); got != text {
			t.Errorf("got %.200s..., want the text unchanged", got)
		}
	})
	t.Run("TripleSlash", func(t *testing.T) {
		text := strings.Repeat("http:///", 250)
		if got := linkify(t, text); got != text {
			t.Errorf("got %.200s..., want the text unchanged", got)
		}
	})
	t.Run("Parens", func(t *testing.T) {
		text := "https://a.org/" + strings.Repeat(")", 1986)
		if got, want := linkify(t, text), al("https://a.org/")+strings.Repeat(")", 1986); got != want {
			t.Errorf("got %.200s..., want the link and the parens after it", got)
		}
	})
	t.Run("ManyLinks", func(t *testing.T) {
		text := strings.TrimSpace(strings.Repeat("http://a.b ", 2000/11))
		want := strings.TrimSpace(strings.Repeat(al("http://a.b")+" ", 2000/11))
		if got := linkify(t, text); got != want {
			t.Errorf("got %.200s..., want %.200s...", got, want)
		}
	})
}

func BenchmarkLinkify(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"Plain", strings.Repeat("hello world ", 2000/12)},
		{"Schemes", strings.Repeat("http://", 2000/7)},
		{"SchemesSpaced", strings.Repeat("http:// ", 250)},
		{"SchemesSlash", strings.Repeat("http:///", 250)},
		{"Links", strings.Repeat("http://a.b ", 2000/11)},
		{"Parens", "https://a.org/" + strings.Repeat(")", 1986)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.text)))
			c := Linkify(bc.text)
			for b.Loop() {
				if err := c.Render(context.Background(), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzLinkify(f *testing.F) {
	for _, s := range []string{
		"", "hello", "<script>alert(1)</script>", "a & b \"c\" 'd'",
		"https://a.org", "see https://a.org/x.", "(https://en.wikipedia.org/wiki/Go_(game))",
		"HTTPS://A.ORG", "xhttp://a.b", "http://", "http:///x", "https://.",
		"javascript:alert(1)//https://x.org", "data:text/html,<b>", "JAVASCRIPT:x",
		"https://a.org/<b>", `https://a.org/"onmouseover="x`, "https://a.org/?a=1&b='2'",
		"https://例え.jp/パス", "https://a.org/x\nnext", "https://a.org/x🙂",
		"http://localhost:8080/a?b=c#d", strings.Repeat("http://", 40), "https://a.org/x)).",
		"\xffhttps://a.org\xfe", "https://a.\xc3org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkLinkified(t, text, linkify(t, text))
	})
}

var (
	linkOpen = regexp.MustCompile(`^<a href="(https?://[^"<>]*)" class="link" rel="nofollow noopener noreferrer ugc" target="_blank">`)
	anyTag   = regexp.MustCompile(`<[^>]*>`)
)

// checkLinkified checks the properties of Linkify's output out for text:
// the only tags are the links, each link's href is its text with the scheme
// lowercased and starts with http:// or https://, links do not nest, the
// visible text is text, and an HTML parser sees the same.
func checkLinkified(t *testing.T, text, out string) {
	t.Helper()
	// Tags, by string.
	inLink := false
	for i := 0; i < len(out); {
		j := strings.IndexByte(out[i:], '<')
		if j < 0 {
			break
		}
		i += j
		switch {
		case strings.HasPrefix(out[i:], "</a>"):
			if !inLink {
				t.Fatalf("Linkify(%q) = %q: </a> without <a> at %d", text, out, i)
			}
			inLink = false
			i += len("</a>")
		case linkOpen.MatchString(out[i:]):
			if inLink {
				t.Fatalf("Linkify(%q) = %q: nested <a> at %d", text, out, i)
			}
			m := linkOpen.FindStringSubmatch(out[i:])
			href := html.UnescapeString(m[1])
			end := strings.Index(out[i:], "</a>")
			if end < 0 {
				t.Fatalf("Linkify(%q) = %q: unclosed <a> at %d", text, out, i)
			}
			vis := html.UnescapeString(out[i+len(m[0]) : i+end])
			if n := strings.Index(vis, "://"); n < 0 || strings.ToLower(vis[:n])+vis[n:] != href {
				t.Errorf("Linkify(%q): link text %q, href %q", text, vis, href)
			}
			if !validLink(href) {
				t.Errorf("Linkify(%q): href %q does not parse as an http(s) URL with a host", text, href)
			}
			inLink = true
			i += len(m[0])
		default:
			t.Fatalf("Linkify(%q) = %q: unexpected markup at %d: %.40q", text, out, i, out[i:])
		}
	}
	if inLink {
		t.Fatalf("Linkify(%q) = %q: unclosed <a>", text, out)
	}
	if strings.ContainsAny(anyTag.ReplaceAllString(out, ""), `<>"'`) {
		t.Errorf("Linkify(%q) = %q: unescaped < > \" or ' outside tags", text, out)
	}
	if got := html.UnescapeString(anyTag.ReplaceAllString(out, "")); got != text {
		t.Errorf("Linkify(%q): visible text %q", text, got)
	}

	// Tags, by an HTML parser: the fragment inside a span, as in a message.
	if !utf8.ValidString(text) || strings.ContainsRune(text, 0) || strings.ContainsRune(text, '\r') {
		// The parser replaces invalid UTF-8 and NUL, and normalizes CR;
		// messages have none of them.
		return
	}
	ctx := &xhtml.Node{Type: xhtml.ElementNode, Data: "span", DataAtom: atom.Span}
	nodes, err := xhtml.ParseFragment(strings.NewReader(out), ctx)
	if err != nil {
		t.Fatalf("parsing Linkify(%q): %v", text, err)
	}
	var vis strings.Builder
	for _, n := range nodes {
		switch n.Type {
		case xhtml.TextNode:
			vis.WriteString(n.Data)
		case xhtml.ElementNode:
			if n.Data != "a" {
				t.Fatalf("Linkify(%q): parser sees a <%s> element", text, n.Data)
			}
			var href, rel, target string
			for _, at := range n.Attr {
				switch at.Key {
				case "href":
					href = at.Val
				case "rel":
					rel = at.Val
				case "target":
					target = at.Val
				case "class":
				default:
					t.Errorf("Linkify(%q): parser sees attribute %s=%q", text, at.Key, at.Val)
				}
			}
			if !strings.HasPrefix(href, "http://") && !strings.HasPrefix(href, "https://") {
				t.Errorf("Linkify(%q): parser sees href %q", text, href)
			}
			if rel != "nofollow noopener noreferrer ugc" || target != "_blank" {
				t.Errorf("Linkify(%q): parser sees rel %q target %q", text, rel, target)
			}
			c := n.FirstChild
			if c == nil || c.Type != xhtml.TextNode || c.NextSibling != nil {
				t.Fatalf("Linkify(%q): link content is not one text node", text)
			}
			vis.WriteString(c.Data)
		default:
			t.Fatalf("Linkify(%q): parser sees node type %v", text, n.Type)
		}
	}
	if vis.String() != text {
		t.Errorf("Linkify(%q): parser sees text %q", text, vis.String())
	}
}
