#!/usr/bin/env bash
# Regenerates reference/proto/*.pb.go from configstream.proto with buf and
# the Go plugins, all built from Go modules pinned in this directory's
# go.mod: no protoc needed. About 1 min the first time (building buf).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
echo "proto: building buf, protoc-gen-go and protoc-gen-go-grpc"
(cd "$here" && go build -o "$tools/" github.com/bufbuild/buf/cmd/buf \
  google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc)
echo "proto: generating reference/proto"
(cd "$root/reference/proto" && PATH="$tools:$PATH" buf generate)
