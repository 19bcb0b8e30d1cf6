package lines

import (
	"bytes"
	"testing"
)

func TestLast(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb"},
		{"\n\n  only\n\n", 1, "only"},
		{"", 3, ""},
	} {
		if got := Last(tc.in, tc.n); got != tc.want {
			t.Errorf("Last(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestSay(t *testing.T) {
	var b bytes.Buffer
	Say(&b, "step %d of %d", 1, 3)
	Say(nil, "nowhere")
	if b.String() != "step 1 of 3\n" {
		t.Errorf("wrote %q", b.String())
	}
}
