package caps

import "testing"

// This host's bounding set, as the machines churnlab was built on have it:
// every capability but CAP_SYS_RESOURCE (bit 24).
const statusWithoutSysResource = "Name:\tcapshim\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n"

func TestUngrantableReadsTheBoundingSet(t *testing.T) {
	missing, err := UngrantableIn([]byte(statusWithoutSysResource))
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || !missing["CAP_SYS_RESOURCE"] {
		t.Errorf("missing = %v, want only CAP_SYS_RESOURCE", missing)
	}
	full, err := UngrantableIn([]byte("CapBnd:\t000001ffffffffff\n"))
	if err != nil || len(full) != 0 {
		t.Errorf("a full bounding set: missing %v, %v; want none", full, err)
	}
	for _, bad := range []string{"Name:\tx\n", "CapBnd:\tzz\n"} {
		if _, err := UngrantableIn([]byte(bad)); err == nil {
			t.Errorf("status %q: no error", bad)
		}
	}
}
