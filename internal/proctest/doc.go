// Package proctest finds processes in /proc, for tests that check a run
// left none of its own behind.
package proctest
