// Package ctxsleep is the one wait the live runner's goroutines use: a
// sleep that a context can cut short.
package ctxsleep
