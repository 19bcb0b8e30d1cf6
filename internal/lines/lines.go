package lines

import (
	"fmt"
	"io"
	"strings"
)

// Say writes one line to w, if w is not nil.
func Say(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// Last returns the last n lines of out, without surrounding blank space.
func Last(out string, n int) string {
	all := strings.Split(strings.TrimSpace(out), "\n")
	return strings.Join(all[max(0, len(all)-n):], "\n")
}
