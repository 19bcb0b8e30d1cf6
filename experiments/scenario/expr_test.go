package scenario

import (
	"strings"
	"testing"
)

func TestExprEval(t *testing.T) {
	size := Size{Pods: 7130, Nodes: 80}
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"60", 60},
		{"pods", 7130},
		{"pods/nodes", 89},
		{"2*nodes + 10", 170},
		{"(pods - 130) / (nodes - 10)", 100},
		{"nodes - pods", 0},    // clamped: a count is never negative
		{"pods/(nodes-80)", 0}, // a division by zero counts as 0
		{" 1.5 * 4 ", 6},
	} {
		var e Expr
		if err := e.parseUnit(tc.in); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := e.Eval(size); got != tc.want {
			t.Errorf("%q at %+v = %d, want %d", tc.in, size, got, tc.want)
		}
	}
}

func TestExprErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":        "expression ends early",
		"pods/":   "expression ends early",
		"pod":     `unknown name "pod" at column 1`,
		"2*(pods": "missing ) for the ( at column 3",
		"nodes/0": "division by zero",
		"3 nodes": `unexpected 'n' at column 3`,
		"1..2":    `bad number "1..2"`,
		"-nodes":  `unexpected '-' at column 1`,
		strings.Repeat("(", 40) + "1" + strings.Repeat(")", 40): "nested deeper than 32",
	} {
		var e Expr
		err := e.parseUnit(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to say %q", in, err, want)
		}
	}
}

// FuzzExpr feeds the size-expression parser arbitrary text: it never
// panics, and what it accepts evaluates to a count in [0, 1e9] that does
// not depend on evaluating twice.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{"pods/nodes", "2*nodes+10", "(pods-1)/(nodes-1)", "60", "1e5", "((("} {
		f.Add(s, 100, 10)
	}
	f.Fuzz(func(t *testing.T, in string, pods, nodes int) {
		var e Expr
		if err := e.parseUnit(in); err != nil {
			if !strings.Contains(err.Error(), "bad count") {
				t.Fatalf("%q: error does not say what is wrong: %v", in, err)
			}
			return
		}
		size := Size{Pods: pods, Nodes: nodes}
		v := e.Eval(size)
		if v < 0 || v > 1e9 || v != e.Eval(size) {
			t.Fatalf("%q at %+v = %d", in, size, v)
		}
	})
}
