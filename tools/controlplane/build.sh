#!/usr/bin/env bash
# Builds the local Kubernetes control plane into bin/, from Go modules only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes v1.34.4)
#   etcd                                                              (go.etcd.io/etcd/server/v3 v3.6.16)
#   kwok                                                              (sigs.k8s.io/kwok v0.7.0)
# With the argument `node`, it builds instead what the kind target's node
# image is made of, into bin/node/ and bin/:
#   kubelet, kubeadm, kube-proxy (CGO_ENABLED=0)                       (k8s.io/kubernetes v1.34.4)
#   coredns                                                            (github.com/coredns/coredns v1.12.1)
#   pause, nodenet, veltrix, podagent, configd, nodeagent, bin/capshim    (this checkout's cmd/)
# Idempotent: a binary newer than the go.mod that pins it is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$root/bin
mkdir -p "$bin"

fresh() { [ -x "$bin/$1" ] && [ "$bin/$1" -nt "$2" ]; }

K8S_VERSION=v1.34.4
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"

if [ "${1:-}" = node ]; then
  mkdir -p "$bin/node"
  todo=()
  for c in kubelet kubeadm kube-proxy; do fresh "node/$c" "$here/go.mod" || todo+=("$c"); done
  if [ ${#todo[@]} -gt 0 ]; then
    echo "kind node: building ${todo[*]} from k8s.io/kubernetes $K8S_VERSION (cold: about 4 min on 2 cores; warm: seconds)"
    start=$SECONDS
    pkgs=()
    for c in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    (cd "$here" && CGO_ENABLED=0 go build -p 2 -o "$bin/node/" -ldflags "$k8s_ldflags" "${pkgs[@]}")
    echo "kind node: built ${todo[*]} in $((SECONDS - start)) s"
  fi
  if ! fresh node/coredns "$root/tools/coredns/go.mod"; then
    echo "kind node: building coredns v1.12.1 (cold: about 2.5 min; warm: seconds)"
    start=$SECONDS
    (cd "$root/tools/coredns" && CGO_ENABLED=0 go build -p 2 -o "$bin/node/coredns" -ldflags "-s -w" github.com/coredns/coredns)
    echo "kind node: built coredns in $((SECONDS - start)) s"
  fi
  (cd "$root" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$bin/node/" ./cmd/pause ./cmd/nodenet ./cmd/veltrix ./cmd/podagent ./cmd/configd ./cmd/nodeagent && go build -o "$bin/capshim" ./cmd/capshim)
  echo "kind node: kubelet, kubeadm, kube-proxy, coredns, pause, nodenet, veltrix, podagent, configd, nodeagent and capshim up to date"
  exit 0
fi

KWOK_VERSION=v0.7.0
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

todo=()
for c in "${k8s_cmds[@]}"; do fresh "$c" "$here/go.mod" || todo+=("$c"); done
if [ ${#todo[@]} -gt 0 ]; then
  echo "controlplane: building ${todo[*]} from k8s.io/kubernetes $K8S_VERSION"
  echo "controlplane:   cold: about 6 min on 2 cores and ~2 GB of RAM (kube-apiserver alone 3 min); warm cache: seconds"
  start=$SECONDS
  pkgs=()
  for c in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$here" && go build -p 2 -o "$bin/" -ldflags "$k8s_ldflags" "${pkgs[@]}")
  echo "controlplane: built ${todo[*]} in $((SECONDS - start)) s"
else
  echo "controlplane: ${k8s_cmds[*]} up to date"
fi

if ! fresh etcd "$here/etcd/go.mod"; then
  echo "controlplane: building etcd (go.etcd.io/etcd/server/v3 v3.6.16; about 30 s cold)"
  start=$SECONDS
  (cd "$here/etcd" && go build -o "$bin/etcd" -ldflags "-s -w" .)
  echo "controlplane: built etcd in $((SECONDS - start)) s"
else
  echo "controlplane: etcd up to date"
fi

if ! fresh kwok "$here/build.sh"; then
  echo "controlplane: installing kwok $KWOK_VERSION (about 2 min cold)"
  start=$SECONDS
  GOBIN="$bin" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  echo "controlplane: built kwok in $((SECONDS - start)) s"
else
  echo "controlplane: kwok up to date"
fi
