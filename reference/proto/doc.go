// Package configstreampb is the reference config service's wire protocol:
// configstream.proto and the Go code `make proto` generates from it (with
// buf and the Go plugins, pinned in tools/proto; no protoc needed). Edit
// the .proto, run make proto, commit both.
package configstreampb
