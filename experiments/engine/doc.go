// Package engine finds or starts the container engine the kind target
// runs its nodes in.
//
// A Docker or Podman that already answers is used as it is. Otherwise
// churnlab starts a private dockerd of its own, from Debian's docker.io
// (installed with apt if missing): its own socket, data root, exec root,
// pid file and config file under its own directories, no default bridge,
// and no iptables, masquerading or forwarding changes to the host, since
// nothing in a kind cluster here needs to leave the machine. The system's
// /etc/docker and any other daemon are never touched.
//
// Where the host's capability bounding set lacks a capability that
// `docker run --privileged` asks for (CAP_SYS_RESOURCE on the machines
// churnlab was built on), the private daemon runs containers through
// cmd/capshim, which drops what the host cannot grant before runc runs.
package engine
