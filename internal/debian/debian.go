package debian

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/churnlab/churnlab/internal/lines"
)

// Ensure installs pkg with apt-get unless command is on PATH, saying so
// on progress with about how long it takes.
func Ensure(ctx context.Context, command, pkg, takes string, progress io.Writer) error {
	if _, err := exec.LookPath(command); err == nil {
		return nil
	}
	lines.Say(progress, "no %s here: installing Debian's %s with apt-get (%s, once per machine)", command, pkg, takes)
	begin := time.Now()
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", pkg}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("installing %s: apt-get %s: %w\n%s", pkg, strings.Join(args, " "), err, lines.Last(string(out), 10))
		}
	}
	lines.Say(progress, "%s installed (%s)", pkg, time.Since(begin).Round(time.Second))
	return nil
}
