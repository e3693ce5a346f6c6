package chat_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

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
		{"OtherScripts", "Ελληνικά_日本語-العربية"},
		{"NonLatinDigits", "٣٤٥"},
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
