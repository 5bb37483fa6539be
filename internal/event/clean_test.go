package event

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\nb\tc\x7fd", 20, "a\uFFFDb\uFFFDc\uFFFDd"},
		{"bad\xff\xfe", 20, "bad\uFFFD"},
		{"ééé", 5, "éé"},
		{"abc", 2, "ab"},
	} {
		if got := CleanText(tc.in, tc.max); got != tc.want {
			t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
	// Whatever Clean leaves, the leaf decoder reads back.
	ev, err := DecodeProducer([]byte(validEvent), &Limits{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	ev.Tenant = "default"
	ev.Request.Path = "/x/\n/" + strings.Repeat("é", 2000)
	ev.Actor.UserAgent = "ua\x00\xff"
	ev.Target.ID = strings.Repeat("\x01", 300)
	ev.Clean()
	if _, _, err := DecodeLeaf(AppendLeaf(nil, ev, nil)); err != nil {
		t.Fatalf("a cleaned event's leaf: %v", err)
	}
	if !utf8.ValidString(ev.Request.Path) || len(ev.Request.Path) > 2048 {
		t.Errorf("path %q", ev.Request.Path)
	}
}
