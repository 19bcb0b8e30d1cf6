// Package lines writes the one-line progress notes of churnlab's long
// steps, and cuts a command's output down to its last lines for an error
// message.
package lines
