//go:build tools

// Package proto pins the code generators `make proto` runs: buf (a pure-Go
// protobuf compiler, so no protoc is needed) and the Go and gRPC plugins.
package proto

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
