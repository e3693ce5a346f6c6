package chat

import "testing"

func TestParseCursor(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   Cursor
		wantOK bool
	}{
		{"Empty", "", Cursor{}, false},
		{"Zero", "0", Cursor{Seq: 0}, true},
		{"One", "1", Cursor{Seq: 1}, true},
		{"Large", "123456789", Cursor{Seq: 123456789}, true},
		{"MaxInt64", "9223372036854775807", Cursor{Seq: 9223372036854775807}, true},
		{"Overflow", "9223372036854775808", Cursor{}, false},
		{"Negative", "-1", Cursor{}, false},
		{"Letters", "abc", Cursor{}, false},
		{"Fraction", "1.5", Cursor{}, false},
		{"Hex", "0x10", Cursor{}, false},
		{"Exponent", "1e3", Cursor{}, false},
		{"LeadingSpace", " 1", Cursor{}, false},
		{"TrailingJunk", "1a", Cursor{}, false},
		{"WithEpoch", "42-9f3a61c0", Cursor{Epoch: "9f3a61c0", Seq: 42}, true},
		{"ZeroWithEpoch", "0-ab", Cursor{Epoch: "ab", Seq: 0}, true},
		{"EmptyEpoch", "42-", Cursor{}, false},
		{"EpochTooLong", "42-0123456789abcdefg", Cursor{}, false},
		{"EpochMaxLen", "42-0123456789abcdef", Cursor{Epoch: "0123456789abcdef", Seq: 42}, true},
		{"EpochUpperCase", "42-ABCD", Cursor{}, false},
		{"EpochPunctuation", "42-ab.cd", Cursor{}, false},
		{"TwoDashes", "42-ab-cd", Cursor{}, false},
		{"EpochOnly", "-ab", Cursor{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseCursor(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseCursor(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{Seq: 0}, {Seq: 7}, {Epoch: NewEpoch(), Seq: 1}, {Epoch: "z9", Seq: 1<<63 - 1}} {
		got, ok := ParseCursor(c.String())
		if !ok || got != c {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v", c.String(), got, ok, c)
		}
	}
	if e := NewEpoch(); len(e) != 8 || !ValidEpoch(e) {
		t.Errorf("NewEpoch() = %q, want 8 lower-case hex digits", e)
	}
	if NewEpoch() == NewEpoch() {
		t.Errorf("two NewEpoch calls gave the same epoch")
	}
}

// Leading zeros are digits like any other (found by FuzzCursor).
func TestParseCursorLeadingZeros(t *testing.T) {
	if got, ok := ParseCursor("00000000000000000000"); !ok || got != (Cursor{}) {
		t.Errorf("ParseCursor(20 zeros) = %v, %v; want seq 0, true", got, ok)
	}
	if got, ok := ParseCursor("000000000000000000042-ab"); !ok || got != (Cursor{Epoch: "ab", Seq: 42}) {
		t.Errorf("ParseCursor(zeros, 42, epoch) = %v, %v", got, ok)
	}
}
