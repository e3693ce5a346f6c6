package views

import (
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
