package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/churnlab/churnlab/reference/proto"
)

// TestSignedTokens (issue #8, credentials): expired, malformed,
// wrong-audience, forged and wrong-selector tokens each get their own
// status and reason; a refused watch of a hunt that exists looks exactly
// like one of a hunt that does not; valid signed tokens work.
func TestSignedTokens(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tokens, err := (*Tokens)(nil).WithSigningKey(key, "configd", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	_, conn := startServer(t, boltStore(t), Options{Tokens: tokens})
	mint := func(c Claims) string {
		t.Helper()
		tok, err := Mint(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	later := now.Add(time.Hour)
	admin := mint(Claims{Audience: "configd", Expires: later, Role: "admin"})
	pod := mint(Claims{Audience: "configd", Expires: later, Role: "pod", Scope: "hunt=h-1"})
	expired := mint(Claims{Audience: "configd", Expires: now.Add(-time.Second), Role: "pod", Scope: "hunt=h-1"})
	elsewhere := mint(Claims{Audience: "billing", Expires: later, Role: "admin"})
	forged := strings.TrimSuffix(pod, pod[len(pod)-4:]) + "AAAA"
	otherKey, _ := Mint([]byte(strings.Repeat("x", MinKeyBytes)), Claims{Audience: "configd", Expires: later, Role: "admin"})

	bg := context.Background()
	if _, err := pb.NewConfigAdminClient(conn).Put(withToken(bg, admin), &pb.PutRequest{Hunt: "h-2", Fragment: []byte("exists")}); err != nil {
		t.Fatalf("Put with a signed admin token: %v", err)
	}
	watch := func(token, sel string) error {
		s, err := pb.NewConfigStreamClient(conn).Watch(withToken(bg, token), &pb.WatchRequest{Selector: sel})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	for _, c := range []struct {
		name  string
		err   error
		code  codes.Code
		words string
	}{
		{"expired", watch(expired, "hunt=h-1"), codes.Unauthenticated, "expired at 2026-11-27T11:59:59Z"},
		{"malformed", watch("cl1.not-base64!.x", "hunt=h-1"), codes.Unauthenticated, "malformed token"},
		{"no signature", watch("cl1.eyJ9", "hunt=h-1"), codes.Unauthenticated, "malformed token"},
		{"wrong audience", watch(elsewhere, "hunt=h-1"), codes.Unauthenticated, `for audience "billing"`},
		{"forged", watch(forged, "hunt=h-1"), codes.Unauthenticated, "signature does not verify"},
		{"another key", watch(otherKey, "hunt=h-1"), codes.Unauthenticated, "signature does not verify"},
		{"wrong selector", watch(pod, "hunt=h-2"), codes.PermissionDenied, "may not watch"},
	} {
		if status.Code(c.err) != c.code || !strings.Contains(status.Convert(c.err).Message(), c.words) {
			t.Errorf("%s: %v; want %s saying %q", c.name, c.err, c.code, c.words)
		}
	}
	// Existence does not leak: hunt h-2 exists, h-9 does not.
	a, b := watch(pod, "hunt=h-2"), watch(pod, "hunt=h-9")
	if status.Code(a) != status.Code(b) || status.Convert(a).Message() != status.Convert(b).Message() {
		t.Errorf("refusals differ between a hunt that exists (%v) and one that does not (%v)", a, b)
	}
	// A valid pod token watches within its scope.
	if err := watch(pod, "hunt=h-1"); status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied {
		t.Errorf("a valid signed pod token was refused: %v", err)
	}
}

func TestMintRefusesBadClaims(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	exp := time.Now().Add(time.Hour)
	for _, c := range []struct {
		key    []byte
		claims Claims
		words  string
	}{
		{key[:8], Claims{Audience: "configd", Expires: exp, Role: "admin"}, "at least 32"},
		{key, Claims{Audience: "configd", Expires: exp, Role: "root"}, "want admin or pod"},
		{key, Claims{Audience: "configd", Expires: exp, Role: "pod", Scope: "hunt in (x"}, "valid scope"},
		{key, Claims{Audience: "configd", Expires: exp, Role: "pod"}, "a pod token needs a scope, a label selector such as hunt=h-17"},
		{key, Claims{Audience: "configd", Expires: exp, Role: "pod", Scope: "  "}, "a pod token needs a scope"},
		{key, Claims{Expires: exp, Role: "admin"}, "audience"},
	} {
		if _, err := Mint(c.key, c.claims); err == nil || !strings.Contains(err.Error(), c.words) || strings.Contains(err.Error(), "<nil>") {
			t.Errorf("Mint(%+v) = %v, want an error saying %q (and no <nil>)", c.claims, err, c.words)
		}
	}
}

// FuzzSignedToken: verifying arbitrary tokens never panics, and only a
// token minted with the key is accepted.
func FuzzSignedToken(f *testing.F) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tokens, err := (*Tokens)(nil).WithSigningKey(key, "configd", func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	valid, _ := Mint(key, Claims{Audience: "configd", Expires: now.Add(time.Hour), Role: "pod", Scope: "hunt=h-1"})
	for _, seed := range []string{valid, "cl1.", "cl1..", "cl1.e30.", valid[:len(valid)-1], valid + "A"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		_, _, err := tokens.verify(token)
		if err == nil && token != valid {
			head, _, _ := strings.Cut(strings.TrimPrefix(token, signedPrefix), ".")
			validHead, _, _ := strings.Cut(strings.TrimPrefix(valid, signedPrefix), ".")
			if head != validHead {
				t.Fatalf("accepted a token that was never minted: %q", token)
			}
		}
		if err != nil && status.Code(err) != codes.Unauthenticated {
			t.Fatalf("refusal %v is not Unauthenticated", err)
		}
	})
}
