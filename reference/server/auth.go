package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Tokens maps bearer tokens to what they allow: the ones a tokens file
// lists, and, with a signing key, signed tokens that carry their own
// role, scope, audience and expiry (signed.go). A nil *Tokens allows
// everything (auth off).
type Tokens struct {
	admin map[string]bool
	pod   map[string][]labels.Selector // token -> the scopes it may watch within

	key      []byte // verifies signed tokens; nil: none accepted
	audience string
	now      func() time.Time
}

// ParseTokens reads a tokens file: one token a line, "TOKEN,admin" or
// "TOKEN,pod,SCOPE" where SCOPE is a label selector (it may contain
// commas) that every watch with this token must stay within; blank lines
// and lines starting with # are skipped. Every bad line is reported.
func ParseTokens(r io.Reader, name string) (*Tokens, error) {
	t := &Tokens{admin: map[string]bool{}, pod: map[string][]labels.Selector{}}
	var problems []string
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		token, rest, _ := strings.Cut(text, ",")
		kind, selector, _ := strings.Cut(rest, ",")
		switch {
		case token == "":
			problems = append(problems, fmt.Sprintf("%s:%d: empty token", name, line))
		case kind == "admin" && selector == "":
			t.admin[token] = true
		case kind == "pod" && strings.TrimSpace(selector) == "":
			problems = append(problems, fmt.Sprintf("%s:%d: a pod token needs a scope, a label selector such as hunt=h-17, as its third field (TOKEN,pod,SELECTOR)", name, line))
		case kind == "pod":
			sel, err := labels.Parse(selector)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: pod token needs a valid selector as its third field, got %q: %v", name, line, selector, err))
				continue
			}
			t.pod[token] = append(t.pod[token], sel)
		default:
			problems = append(problems, fmt.Sprintf("%s:%d: want TOKEN,admin or TOKEN,pod,SELECTOR", name, line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("server: reading %s: %w", name, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("server: bad tokens file:\n%s", strings.Join(problems, "\n"))
	}
	return t, nil
}

// LoadTokens reads a tokens file from disk.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	defer f.Close()
	return ParseTokens(f, path)
}

// bearer returns the token of ctx's "authorization: Bearer TOKEN"
// metadata. The scheme's name is case-insensitive, as everywhere in HTTP
// (RFC 7235 section 2.1): bearer and BEARER do as well as Bearer.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		return "", status.Error(codes.Unauthenticated, "missing authorization: Bearer <token>")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimLeft(token, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", status.Error(codes.Unauthenticated, "malformed authorization header; want Bearer <token>")
	}
	return token, nil
}

// identify returns what the token ctx carries may do: write and watch
// anything (admin), or watch within scopes (pod).
func (t *Tokens) identify(ctx context.Context) (admin bool, scopes []labels.Selector, err error) {
	token, err := bearer(ctx)
	if err != nil {
		return false, nil, err
	}
	if t.admin[token] {
		return true, nil, nil
	}
	if scopes, ok := t.pod[token]; ok {
		return false, scopes, nil
	}
	if strings.HasPrefix(token, signedPrefix) {
		return t.verify(token)
	}
	return false, nil, status.Error(codes.Unauthenticated, "unknown token")
}

// authorizeAdmin checks that ctx carries an admin token.
func (t *Tokens) authorizeAdmin(ctx context.Context) error {
	if t == nil {
		return nil
	}
	admin, _, err := t.identify(ctx)
	if err != nil || admin {
		return err
	}
	return status.Error(codes.PermissionDenied, "a pod token cannot write config")
}

// authorizeWatch checks that ctx carries a token that may watch sel: an
// admin token, or a pod token with a scope sel stays within.
func (t *Tokens) authorizeWatch(ctx context.Context, sel labels.Selector) error {
	if t == nil {
		return nil
	}
	admin, scopes, err := t.identify(ctx)
	if err != nil || admin {
		return err
	}
	for _, scope := range scopes {
		if within(sel, scope) {
			return nil
		}
	}
	// The same answer whether or not the hunts exist: nothing leaks.
	return status.Error(codes.PermissionDenied, "this token may not watch that selector")
}

// within reports whether every label set sel matches is also matched by
// scope, judged from their requirements: for each requirement of scope,
// sel must have the same one, or, where scope's is "in" or "=", one on the
// same key that is "in" or "=" with values scope allows. Anything else is
// refused, which errs on the safe side.
func within(sel, scope labels.Selector) bool {
	want, _ := scope.Requirements()
	have, _ := sel.Requirements()
	for _, w := range want {
		ok := false
		for _, h := range have {
			if h.Key() != w.Key() {
				continue
			}
			if h.String() == w.String() || (isSetOp(w.Operator()) && isSetOp(h.Operator()) && w.Values().IsSuperset(h.Values())) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func isSetOp(op selection.Operator) bool {
	return op == selection.In || op == selection.Equals || op == selection.DoubleEquals
}
