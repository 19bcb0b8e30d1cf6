package ctxsleep

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx ends; it reports whether the whole d
// passed. A d of zero or less returns at once, true unless ctx has ended.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
