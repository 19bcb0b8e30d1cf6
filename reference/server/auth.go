package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"
)

// Tokens maps bearer tokens to what they allow. A nil *Tokens allows
// everything (auth off).
type Tokens struct {
	admin map[string]bool
	pod   map[string][]string // token -> selectors it may watch, canonical form
}

// ParseTokens reads a tokens file: one token a line, "TOKEN,admin" or
// "TOKEN,pod,SELECTOR" (the selector may contain commas); blank lines and
// lines starting with # are skipped. Every bad line is reported.
func ParseTokens(r io.Reader, name string) (*Tokens, error) {
	t := &Tokens{admin: map[string]bool{}, pod: map[string][]string{}}
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
		case kind == "pod":
			sel, err := labels.Parse(selector)
			if err != nil || selector == "" {
				problems = append(problems, fmt.Sprintf("%s:%d: pod token needs a valid selector: %v", name, line, err))
				continue
			}
			t.pod[token] = append(t.pod[token], sel.String())
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

func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		return "", status.Error(codes.Unauthenticated, "missing authorization: Bearer <token>")
	}
	token, ok := strings.CutPrefix(values[0], "Bearer ")
	if !ok || token == "" {
		return "", status.Error(codes.Unauthenticated, "malformed authorization header; want Bearer <token>")
	}
	return token, nil
}

// authorizeAdmin checks that ctx carries an admin token.
func (t *Tokens) authorizeAdmin(ctx context.Context) error {
	if t == nil {
		return nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return err
	}
	if t.admin[token] {
		return nil
	}
	if _, ok := t.pod[token]; ok {
		return status.Error(codes.PermissionDenied, "a pod token cannot write config")
	}
	return status.Error(codes.Unauthenticated, "unknown token")
}

// authorizeWatch checks that ctx carries a token that may watch selector
// (canonical form). Admin tokens may watch anything.
func (t *Tokens) authorizeWatch(ctx context.Context, selector string) error {
	if t == nil {
		return nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return err
	}
	if t.admin[token] {
		return nil
	}
	allowed, ok := t.pod[token]
	if !ok {
		return status.Error(codes.Unauthenticated, "unknown token")
	}
	for _, a := range allowed {
		if a == selector {
			return nil
		}
	}
	// The same answer whether or not the hunts exist: nothing leaks.
	return status.Error(codes.PermissionDenied, "this token may not watch that selector")
}
