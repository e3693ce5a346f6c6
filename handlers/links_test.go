package handlers

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/hxchat/hxchat/views"
)

// linkMarkup is the markup of a link in a message, href and text as they
// appear in the HTML (already escaped).
func linkMarkup(href, text string) string {
	return `<a href="` + href + `" class="link" rel="nofollow noopener noreferrer ugc" target="_blank">` + text + `</a>`
}

var (
	// msgTextSpan is the text of message 1 in a page or fragment.
	msgTextSpan = regexp.MustCompile(`(?s)<li id="msg-1"[^>]*>.*?<span class="text">(.*?)</span></li>`)
	// anchorTag is every <a ...> start tag.
	anchorTag = regexp.MustCompile(`(?is)<a\b[^>]*>`)
	// scriptHref is an href (or src, action) with a script or data scheme.
	scriptHref = regexp.MustCompile(`(?is)\b(href|src|action)\s*=\s*["']?\s*(javascript|vbscript|data):`)
	// anyScript is a script start tag, inline or not.
	anyScript = regexp.MustCompile(`(?is)<script\b`)
)

// hostileLinks is a message mixing markup, script schemes and URLs; the
// want is the HTML of its text in the log.
const hostileLinks = `<script>alert(1)</script> see https://a.org/x?a=1&b='2'. ` +
	`(https://en.wikipedia.org/wiki/Go_(game)) javascript:alert(1)//https://x.org JAVASCRIPT:alert(2) ` +
	`data:text/html,<b>x</b> <a href="javascript:alert(3)">x</a> https://a.org/"onmouseover="alert(4)` + "\n" +
	`HTTPS://例え.jp/パス! xhttp://no.link http:// ftp://no.link`

var hostileLinksHTML = `&lt;script&gt;alert(1)&lt;/script&gt; see ` +
	linkMarkup(`https://a.org/x?a=1&amp;b=&#39;2`, `https://a.org/x?a=1&amp;b=&#39;2`) + `&#39;. (` +
	linkMarkup(`https://en.wikipedia.org/wiki/Go_(game)`, `https://en.wikipedia.org/wiki/Go_(game)`) + `) javascript:alert(1)//` +
	linkMarkup(`https://x.org`, `https://x.org`) + ` JAVASCRIPT:alert(2) ` +
	`data:text/html,&lt;b&gt;x&lt;/b&gt; &lt;a href=&#34;javascript:alert(3)&#34;&gt;x&lt;/a&gt; ` +
	linkMarkup(`https://a.org/`, `https://a.org/`) + `&#34;onmouseover=&#34;alert(4)` + "\n" +
	linkMarkup(`https://例え.jp/パス`, `HTTPS://例え.jp/パス`) + `! xhttp://no.link http:// ftp://no.link`

// checkMessageLinks checks that body, a page or fragment with message 1 of
// hostileLinks, shows its text as hostileLinksHTML and has no script markup
// from it.
func checkMessageLinks(t *testing.T, where, body string) {
	t.Helper()
	m := msgTextSpan.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s: no text of message 1 in %.1000q", where, body)
	}
	if m[1] != hostileLinksHTML {
		t.Errorf("%s: message text\n got %s\nwant %s", where, m[1], hostileLinksHTML)
	}
	if tags := anchorTag.FindAllString(m[1], -1); len(tags) != 5 {
		t.Errorf("%s: %d links in the message, want 5: %q", where, len(tags), tags)
	} else {
		for _, tag := range tags {
			if !strings.HasPrefix(tag, `<a href="http://`) && !strings.HasPrefix(tag, `<a href="https://`) ||
				!strings.Contains(tag, ` rel="nofollow noopener noreferrer ugc"`) {
				t.Errorf("%s: link %q", where, tag)
			}
		}
	}
	if s := scriptHref.FindString(body); s != "" {
		t.Errorf("%s: script URL in markup: %q", where, s)
	}
	if anyScript.MatchString(m[1]) {
		t.Errorf("%s: <script in the message", where)
	}
	if strings.Contains(m[1], `<b>`) || strings.Contains(m[1], `onmouseover="`) {
		t.Errorf("%s: markup from the text in the message", where)
	}
}

func TestMessageLinks(t *testing.T) {
	t.Run("RoomPage", func(t *testing.T) {
		e := newEnv(t)
		c := e.newGuest(t)
		w := e.postForm(views.PostURL("lobby"), url.Values{"message": {hostileLinks}}, c, false)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("POST: status %d, want 303; body %.300q", w.Code, w.Body.String())
		}
		if msgs := e.recent(t, "lobby", 10); len(msgs) != 1 || msgs[0].Text != hostileLinks {
			t.Fatalf("stored %+v, want the message as sent", msgs)
		}
		w = e.getAs(views.RoomURL("lobby"), c)
		if w.Code != http.StatusOK {
			t.Fatalf("GET room: status %d, want 200", w.Code)
		}
		body := w.Body.String()
		checkMessageLinks(t, "room page", body)
		checkPageHygiene(t, body)
	})
	t.Run("Stream", func(t *testing.T) {
		e := newEnv(t)
		ts := e.serve(t)
		rd := openOK(t, ts, views.EventsURL("lobby", 0), nil)
		postHTTP(t, ts, "lobby", hostileLinks)
		ev := rd.nextMessage(t)
		checkMessageLinks(t, "stream", ev.data())
	})
}
