// Package images assembles container images offline, as docker-save
// tarballs that `docker load` and `ctr images import` take, from files on
// this machine: binaries built here from Go modules, Debian files, a
// debootstrap rootfs. Nothing is pulled and nothing is built by a
// container engine; go-containerregistry writes the images.
//
// Layers are reproducible (sorted entries, fixed owners and times), so an
// image made twice from the same files has the same digest, and a caller
// can key a cache on it.
package images
