// Package kindnode builds churnlab's kind node image offline: a Debian
// rootfs from Debian's packages (debootstrap), kind's own node files from
// the kind module at the version go.mod pins, kubelet, kubeadm and kubectl
// built here at the control plane's Kubernetes version (1.34.4), and every
// image kubeadm and kind need, preloaded, each assembled by package images
// from binaries built here. No registry is reached and nothing is pulled.
//
// The image is content-addressed: its tag is a digest of everything that
// goes into it, so a second build with the same inputs finds it in the
// cache (or in the engine) and takes seconds.
package kindnode
