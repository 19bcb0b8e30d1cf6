// Package caps reads which Linux capabilities this host can grant: the
// capability bounding set, by the names OCI runtime specs use.
package caps
