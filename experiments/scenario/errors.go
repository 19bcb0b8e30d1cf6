package scenario

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem in a scenario file: where it is, which field,
// and what is wrong.
type FieldError struct {
	File string
	Pos  Pos    // zero when the field is missing from the file
	Path string // field path such as cluster.uplink or events[2].at; empty for the whole file
	Msg  string
}

// Error formats e as file:line:column: path: message, leaving out the
// parts that are unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Pos.Line)
		if e.Pos.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Pos.Column)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one scenario file, in file order. Load,
// Parse and Validate return it (as error) so that a user fixes all of them
// in one pass.
type Errors struct {
	List []FieldError
}

func (e *Errors) add(fe FieldError) { e.List = append(e.List, fe) }

// hasPath reports whether a problem was already found at path, under it
// or at one of its parents, so that Validate does not pile a second
// complaint on a field that failed to decode.
func (e *Errors) hasPath(path string) bool {
	for _, fe := range e.List {
		if fe.Path == "" {
			continue
		}
		if fe.Path == path || isUnder(fe.Path, path) || isUnder(path, fe.Path) {
			return true
		}
	}
	return false
}

// isUnder reports whether path names a field inside parent.
func isUnder(path, parent string) bool {
	return strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, fe := range e.List {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by position; missing fields (line 0) come first.
func (e *Errors) sort() {
	slices.SortStableFunc(e.List, func(a, b FieldError) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
}

// orNil returns e as an error, or nil when it holds no problems.
func (e *Errors) orNil() error {
	if len(e.List) == 0 {
		return nil
	}
	e.sort()
	return e
}
