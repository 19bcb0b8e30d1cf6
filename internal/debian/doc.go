// Package debian installs Debian packages that churnlab needs at run
// time (docker.io for the private engine, debootstrap for the kind node
// image) with apt-get, when the command they provide is missing.
package debian
