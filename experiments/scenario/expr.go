package scenario

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Expr is a count written as a whole number or as an expression of the
// cluster's size: the names pods and nodes, numbers, + - * / and
// parentheses, as in "pods/nodes" or "2*nodes + 10". It is evaluated when
// a request is made, against the cluster as it is then.
type Expr struct {
	text string
	root exprNode
}

// Size is what an Expr's names stand for.
type Size struct {
	Pods, Nodes int
}

// Eval returns the expression's value at size, rounded to a whole count
// and clamped to [0, 1e9]; a division by zero counts as 0.
func (e Expr) Eval(s Size) int {
	if e.root == nil {
		return 0
	}
	v := e.root.eval(s)
	switch {
	case math.IsNaN(v) || v < 0:
		return 0
	case v > 1e9:
		return 1e9
	}
	return int(math.Round(v))
}

// String returns the expression as written.
func (e Expr) String() string { return e.text }

func (e *Expr) parseUnit(s string) error {
	p := exprParser{in: s}
	root, err := p.parse()
	if err != nil {
		return fmt.Errorf("bad count %q: %v (want a number, or an expression of pods and nodes such as pods/nodes or 2*nodes+10)", s, err)
	}
	*e = Expr{text: strings.TrimSpace(s), root: root}
	return nil
}

var _ unitValue = (*Expr)(nil)

type exprNode interface {
	eval(Size) float64
}

type exprNum float64

func (n exprNum) eval(Size) float64 { return float64(n) }

type exprName string

func (n exprName) eval(s Size) float64 {
	if n == "pods" {
		return float64(s.Pods)
	}
	return float64(s.Nodes)
}

type exprOp struct {
	op   byte
	l, r exprNode
}

func (o exprOp) eval(s Size) float64 {
	l, r := o.l.eval(s), o.r.eval(s)
	switch o.op {
	case '+':
		return l + r
	case '-':
		return l - r
	case '*':
		return l * r
	}
	if r == 0 {
		return 0
	}
	return l / r
}

// exprParser is a recursive-descent parser of
//
//	expr   = term { ("+" | "-") term }
//	term   = factor { ("*" | "/") factor }
//	factor = number | "pods" | "nodes" | "(" expr ")"
type exprParser struct {
	in    string
	pos   int
	depth int
}

const maxExprDepth = 32

func (p *exprParser) parse() (exprNode, error) {
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.in) {
		return nil, fmt.Errorf("unexpected %q at column %d", p.in[p.pos], p.pos+1)
	}
	return n, nil
}

func (p *exprParser) space() {
	for p.pos < len(p.in) && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t') {
		p.pos++
	}
}

func (p *exprParser) expr() (exprNode, error) { return p.binary("+-", p.term) }

func (p *exprParser) term() (exprNode, error) { return p.binary("*/", p.factor) }

// binary parses operand { op operand } for the operators in ops, left
// to right.
func (p *exprParser) binary(ops string, operand func() (exprNode, error)) (exprNode, error) {
	l, err := operand()
	for err == nil {
		p.space()
		if p.pos == len(p.in) || !strings.ContainsRune(ops, rune(p.in[p.pos])) {
			return l, nil
		}
		op := p.in[p.pos]
		p.pos++
		var r exprNode
		if r, err = operand(); err == nil {
			if n, ok := r.(exprNum); ok && n == 0 && op == '/' {
				return nil, fmt.Errorf("division by zero at column %d", p.pos)
			}
			l = exprOp{op, l, r}
		}
	}
	return nil, err
}

func (p *exprParser) factor() (exprNode, error) {
	p.space()
	if p.pos == len(p.in) {
		return nil, fmt.Errorf("expression ends early")
	}
	start := p.pos
	switch c := p.in[p.pos]; {
	case c == '(':
		if p.depth++; p.depth > maxExprDepth {
			return nil, fmt.Errorf("parentheses nested deeper than %d", maxExprDepth)
		}
		p.pos++
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos == len(p.in) || p.in[p.pos] != ')' {
			return nil, fmt.Errorf("missing ) for the ( at column %d", start+1)
		}
		p.pos++
		p.depth--
		return n, nil
	case c >= '0' && c <= '9' || c == '.':
		for p.pos < len(p.in) && (p.in[p.pos] >= '0' && p.in[p.pos] <= '9' || p.in[p.pos] == '.') {
			p.pos++
		}
		v, err := strconv.ParseFloat(p.in[start:p.pos], 64)
		if err != nil || v > 1e12 {
			return nil, fmt.Errorf("bad number %q at column %d", p.in[start:p.pos], start+1)
		}
		return exprNum(v), nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		for p.pos < len(p.in) && (p.in[p.pos] >= 'a' && p.in[p.pos] <= 'z' || p.in[p.pos] >= 'A' && p.in[p.pos] <= 'Z') {
			p.pos++
		}
		name := p.in[start:p.pos]
		if name != "pods" && name != "nodes" {
			return nil, fmt.Errorf("unknown name %q at column %d; want pods or nodes", name, start+1)
		}
		return exprName(name), nil
	default:
		return nil, fmt.Errorf("unexpected %q at column %d", c, start+1)
	}
}
