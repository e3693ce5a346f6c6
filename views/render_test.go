package views

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hxchat/hxchat/chat"
)

func TestLFOnly(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"None", "abc", "abc"},
		{"LF", "a\nb", "a\nb"},
		{"CRLF", "a\r\nb", "a\nb"},
		{"CR", "a\rb", "a\nb"},
		{"Mixed", "a\r\nb\rc\nd\r", "a\nb\nc\nd\n"},
		{"CRCRLF", "a\r\r\nb", "a\n\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(lfOnly([]byte(tt.in))); got != tt.want {
				t.Errorf("lfOnly(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// A message whose text came from a store that kept CRs (not written by
// this server, which normalises on post) still renders with LF only.
func TestRenderMessageHasNoCR(t *testing.T) {
	b, err := RenderMessage(chat.Message{Seq: 1, Author: "a", Text: "x\r\ny\rz", Time: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(string(b), '\r') || !strings.Contains(string(b), "x\ny\nz") {
		t.Fatalf("fragment %q: want the text's lines joined by LF and no CR", b)
	}
}

// A snapshot begins with "Load earlier messages" unless it starts at the
// room's first message, and never shows a deletion record.
func TestSnapshotEarlierAndRecords(t *testing.T) {
	msg := func(seq int64) chat.Message {
		return chat.Message{Room: "lobby", Seq: seq, Epoch: "9f3a61c0", Author: "a", AuthorKey: "0123456789ab", Text: fmt.Sprintf("text %d", seq)}
	}
	rec := chat.Message{Room: "lobby", Seq: 8, Epoch: "9f3a61c0", Deletes: 6}
	gone := msg(6)
	gone.Deleted, gone.Text = true, ""
	for _, tc := range []struct {
		name    string
		msgs    []chat.Message
		earlier string
	}{
		{"FromTheFirst", []chat.Message{msg(1), msg(2)}, ""},
		{"Later", []chat.Message{msg(5), gone, msg(7), rec}, `<li id="earlier" class="earlier"><a href="/chat/lobby/?before=5"`},
		{"Empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := RenderSnapshot(tc.msgs, false)
			if err != nil {
				t.Fatal(err)
			}
			html := string(b)
			if has := strings.Contains(html, `id="earlier"`); has != (tc.earlier != "") || tc.earlier != "" && !strings.Contains(html, tc.earlier) {
				t.Errorf("snapshot %s: want earlier link %q", html, tc.earlier)
			}
			if strings.Contains(html, `hx-target="#msg-`) {
				t.Errorf("snapshot renders a deletion record: %s", html)
			}
			if len(tc.msgs) > 1 && tc.msgs[1].Deleted && !strings.Contains(html, `<li id="msg-6" class="msg deleted">`) {
				t.Errorf("snapshot lacks the placeholder: %s", html)
			}
		})
	}
}
