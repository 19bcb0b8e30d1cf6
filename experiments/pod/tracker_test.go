package pod

import (
	"strings"
	"testing"
	"time"
)

func TestLoadedMessageReadsBack(t *testing.T) {
	at := time.Date(2026, 12, 4, 20, 31, 7, 123456789, time.UTC)
	got, n, err := parseLoaded(loadedMessage(at, 2_000_000))
	if err != nil || !got.Equal(at) || n != 2_000_000 {
		t.Errorf("read back %s, %d, %v; want %s, 2000000", got, n, err, at)
	}
	for _, bad := range []string{
		"", // no message
		"config loaded at yesterday; 5 bytes over the uplink",             // not a time
		"config loaded at 2026-12-04T20:31:07Z; -5 bytes over the uplink", // negative
		"config loaded at 2026-12-04T20:31:07Z; 5 bytes",                  // cut short
	} {
		if _, _, err := parseLoaded(bad); err == nil || !strings.Contains(err.Error(), string(ConfigReady)) {
			t.Errorf("parseLoaded(%q): %v, want an error naming the condition", bad, err)
		}
	}
}

// FuzzParseLoaded: no message makes it panic, and what it accepts writes
// back the same.
func FuzzParseLoaded(f *testing.F) {
	f.Add(loadedMessage(time.Unix(1_700_000_000, 5), 42))
	f.Add("config loaded at ; bytes over the uplink")
	f.Fuzz(func(t *testing.T, msg string) {
		at, n, err := parseLoaded(msg)
		if err != nil {
			return
		}
		again, m, err := parseLoaded(loadedMessage(at, n))
		if err != nil || !again.Equal(at) || m != n {
			t.Fatalf("%q read as %s %d, which reads back as %s %d (%v)", msg, at, n, again, m, err)
		}
	})
}
