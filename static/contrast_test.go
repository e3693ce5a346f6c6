package static

import (
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The colour pairs of app.css that carry text (or a focus ring, or the
// own-message tint under text), each checked in the light and the dark
// theme against WCAG 2's 4.5:1 for normal text.
var contrastPairs = []struct{ fg, bg, use string }{
	{"ink", "bg", "page text"},
	{"ink", "panel", "text in the log and the forms"},
	{"muted", "panel", "times, hints and placeholders"},
	{"muted", "bg", "muted text on the page"},
	{"accent-ink", "accent", "button labels"},
	{"error", "panel", "a refused message's reason"},
	{"error", "bg", "an error page's reason"},
	{"accent", "panel", "links, the Other rooms pill and focus rings"},
	{"accent", "bg", "links and focus rings on the page"},
	{"ink", "mine", "the text of one's own messages"},
	{"muted", "mine", "the time and (you) of one's own messages"},
	{"accent", "mine", "the edge of one's own messages"},
}

func TestContrast(t *testing.T) {
	css, err := fs.ReadFile(FS(), "app.css")
	if err != nil {
		t.Fatal(err)
	}
	light, dark, err := themes(string(css))
	if err != nil {
		t.Fatal(err)
	}
	for _, theme := range []struct {
		name   string
		colors map[string]string
	}{{"light", light}, {"dark", dark}} {
		for _, p := range contrastPairs {
			t.Run(theme.name+"/"+p.fg+"-on-"+p.bg, func(t *testing.T) {
				fg, bg := theme.colors[p.fg], theme.colors[p.bg]
				if fg == "" || bg == "" {
					t.Fatalf("--%s or --%s is not set to a #hex colour in the %s theme", p.fg, p.bg, theme.name)
				}
				r, err := contrastRatio(fg, bg)
				if err != nil {
					t.Fatal(err)
				}
				if r < 4.5 {
					t.Errorf("%s (--%s %s on --%s %s): contrast %.2f:1, want at least 4.5:1", p.use, p.fg, fg, p.bg, bg, r)
				}
			})
		}
	}
}

// TestContrastRatio checks the formula against known values.
func TestContrastRatio(t *testing.T) {
	for _, tt := range []struct {
		fg, bg string
		want   float64
	}{
		{"#000000", "#ffffff", 21},
		{"#fff", "#fff", 1},
		{"#767676", "#ffffff", 4.54}, // the classic lightest AA grey on white
		{"#777777", "#ffffff", 4.48},
	} {
		got, err := contrastRatio(tt.fg, tt.bg)
		if err != nil || math.Abs(got-tt.want) > 0.01 {
			t.Errorf("contrastRatio(%s, %s) = %.3f, %v; want %.2f", tt.fg, tt.bg, got, err, tt.want)
		}
	}
}

var (
	// darkBlock is the body of the dark theme's media block (no nested
	// braces but the :root rule's).
	darkBlock = regexp.MustCompile(`@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)\s*\{\s*:root\s*\{([^}]*)\}`)
	// rootBlock is a top-level :root rule.
	rootBlock = regexp.MustCompile(`(?m)^:root\s*\{([^}]*)\}`)
	colorProp = regexp.MustCompile(`--([a-z-]+)\s*:\s*(#[0-9a-fA-F]{3,6})\s*;`)
	comments  = regexp.MustCompile(`(?s)/\*.*?\*/`)
)

// themes returns the #hex custom properties of the light theme (the
// top-level :root rule) and of the dark one (light overridden by the :root
// rule inside @media (prefers-color-scheme: dark)).
func themes(css string) (light, dark map[string]string, err error) {
	css = comments.ReplaceAllString(css, "")
	l := rootBlock.FindStringSubmatch(css)
	d := darkBlock.FindStringSubmatch(css)
	if l == nil || d == nil {
		return nil, nil, fmt.Errorf("app.css: want a top-level :root rule and one in @media (prefers-color-scheme: dark)")
	}
	light, dark = map[string]string{}, map[string]string{}
	for _, m := range colorProp.FindAllStringSubmatch(l[1], -1) {
		light[m[1]], dark[m[1]] = m[2], m[2]
	}
	for _, m := range colorProp.FindAllStringSubmatch(d[1], -1) {
		dark[m[1]] = m[2]
	}
	return light, dark, nil
}

// contrastRatio is WCAG 2's contrast ratio of two #rgb or #rrggbb colours.
func contrastRatio(a, b string) (float64, error) {
	la, err := luminance(a)
	if err != nil {
		return 0, err
	}
	lb, err := luminance(b)
	if err != nil {
		return 0, err
	}
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05), nil
}

// luminance is WCAG 2's relative luminance of a #rgb or #rrggbb colour.
func luminance(hex string) (float64, error) {
	h := strings.TrimPrefix(hex, "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return 0, fmt.Errorf("colour %q: want #rgb or #rrggbb", hex)
	}
	var c [3]float64
	for i := range c {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return 0, fmt.Errorf("colour %q: %w", hex, err)
		}
		s := float64(v) / 255
		if s <= 0.04045 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2], nil
}
