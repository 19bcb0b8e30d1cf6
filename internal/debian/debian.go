package debian

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Ensure installs pkg with apt-get unless command is on PATH, saying so
// on progress with about how long it takes.
func Ensure(ctx context.Context, command, pkg, takes string, progress io.Writer) error {
	if _, err := exec.LookPath(command); err == nil {
		return nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "no %s here: installing Debian's %s with apt-get (%s, once per machine)\n", command, pkg, takes)
	}
	begin := time.Now()
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", pkg}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			return fmt.Errorf("installing %s: apt-get %s: %w\n%s", pkg, strings.Join(args, " "), err, strings.Join(lines[max(0, len(lines)-10):], "\n"))
		}
	}
	if progress != nil {
		fmt.Fprintf(progress, "%s installed (%s)\n", pkg, time.Since(begin).Round(time.Second))
	}
	return nil
}
