//go:build tools

// Package coredns pins CoreDNS at the version kubeadm 1.34 deploys
// (registry.k8s.io/coredns/coredns:v1.12.1), for the kind node image's
// preloaded coredns image (build.sh's node step). It holds no code: the
// blank import makes `go mod tidy` keep what the build needs.
package coredns

import _ "github.com/coredns/coredns"
