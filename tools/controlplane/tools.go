//go:build tools

// Package controlplane pins the Kubernetes control-plane commands that
// `make controlplane` builds into bin/ (see build.sh). It holds no code of
// its own: the blank imports make `go mod tidy` keep what the build needs.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"

	// The kind node image's binaries (build.sh's node step).
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
