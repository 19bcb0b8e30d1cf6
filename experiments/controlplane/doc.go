// Package controlplane brings a real, local Kubernetes control plane up and
// down for the `local` target: etcd, kube-apiserver (API Priority and
// Fairness on, token auth, RBAC, a self-signed serving certificate),
// kube-controller-manager, kube-scheduler, and kwok with fake nodes, every
// one on random free loopback ports in its own temporary directory.
// kwok plays the pod lifecycle of kwok-stages.yaml: its own, but for
// readiness gates, which keep a pod unready until each is True, as a
// kubelet does.
//
// The binaries are the ones `make controlplane` builds into bin/ from Go
// modules (tools/controlplane). Start returns once every component is
// ready, with a rest.Config for the admin (system:masters, which APF
// exempts) and one for the operator's own identity, which APF does
// throttle. Stop, called also on test failure or when Start's context ends
// (for example on SIGINT through signal.NotifyContext), stops every
// process and removes the directory.
//
//	cp, err := controlplane.Start(ctx, controlplane.Options{Nodes: 3, MaxRequestsInflight: 5})
//	if err != nil { ... }
//	defer cp.Stop()
//	client := kubernetes.NewForConfigOrDie(cp.Operator)
package controlplane
