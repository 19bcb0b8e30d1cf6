package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"
)

// signedPrefix starts every signed token: "cl1." base64url(claims JSON)
// "." base64url(HMAC-SHA256 of everything before the second dot).
const signedPrefix = "cl1."

// MinKeyBytes is the shortest signing key accepted.
const MinKeyBytes = 32

// Claims is what a signed token says about its bearer.
type Claims struct {
	Audience string    `json:"aud"`             // the service it is for
	Expires  time.Time `json:"exp"`             // when it stops working
	Role     string    `json:"role"`            // "admin" or "pod"
	Scope    string    `json:"scope,omitempty"` // pod: the selector its watches must stay within
}

// Mint signs claims with key. Pod tokens need a valid scope.
func Mint(key []byte, c Claims) (string, error) {
	if len(key) < MinKeyBytes {
		return "", fmt.Errorf("server: signing key is %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	switch c.Role {
	case "admin":
	case "pod":
		if strings.TrimSpace(c.Scope) == "" {
			return "", errors.New("server: a pod token needs a scope, a label selector such as hunt=h-17 that its watches must stay within")
		}
		if _, err := labels.Parse(c.Scope); err != nil {
			return "", fmt.Errorf("server: a pod token needs a valid scope selector; %q is not one: %v", c.Scope, err)
		}
	default:
		return "", fmt.Errorf("server: role %q: want admin or pod", c.Role)
	}
	if c.Audience == "" || c.Expires.IsZero() {
		return "", errors.New("server: a token needs an audience and an expiry")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	head := signedPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return head + "." + base64.RawURLEncoding.EncodeToString(sign(key, head)), nil
}

func sign(key []byte, head string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(head))
	return m.Sum(nil)
}

// WithSigningKey makes t accept tokens signed with key for audience as
// well as the ones it lists. now tells the time for expiry checks.
func (t *Tokens) WithSigningKey(key []byte, audience string, now func() time.Time) (*Tokens, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("server: signing key is %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	if audience == "" {
		return nil, errors.New("server: signed tokens need an audience")
	}
	out := &Tokens{admin: map[string]bool{}, pod: map[string][]labels.Selector{}}
	if t != nil {
		out.admin, out.pod = t.admin, t.pod
	}
	out.key, out.audience, out.now = key, audience, now
	return out, nil
}

// LoadSigningKey reads a signing key file.
func LoadSigningKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("server: signing key %s is %d bytes, want at least %d", path, len(key), MinKeyBytes)
	}
	return key, nil
}

// verify checks a signed token and returns what it allows. Every failure
// is Unauthenticated and says which check failed, but never echoes the
// token.
func (t *Tokens) verify(token string) (admin bool, scopes []labels.Selector, err error) {
	fail := func(why string) (bool, []labels.Selector, error) {
		return false, nil, status.Error(codes.Unauthenticated, why)
	}
	if t.key == nil {
		return fail("unknown token")
	}
	head, sig, ok := strings.Cut(strings.TrimPrefix(token, signedPrefix), ".")
	if !ok {
		return fail("malformed token: want cl1.<claims>.<signature>")
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(head)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return fail("malformed token: not base64url")
	}
	if !hmac.Equal(mac, sign(t.key, signedPrefix+head)) {
		return fail("token signature does not verify")
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return fail("malformed token: claims are not JSON")
	}
	if c.Audience != t.audience {
		return fail(fmt.Sprintf("token is for audience %q, not %q", c.Audience, t.audience))
	}
	if now := t.now(); !now.Before(c.Expires) {
		return fail(fmt.Sprintf("token expired at %s", c.Expires.UTC().Format(time.RFC3339)))
	}
	switch c.Role {
	case "admin":
		return true, nil, nil
	case "pod":
		sel, err := labels.Parse(c.Scope)
		if err != nil || c.Scope == "" {
			return fail("malformed token: bad scope")
		}
		return false, []labels.Selector{sel}, nil
	}
	return fail("malformed token: unknown role")
}
