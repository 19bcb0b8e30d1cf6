package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/kindnode"
)

// defaultCache is where the kind node image's rootfs, layers and tarballs
// are kept between builds: the user's cache directory, as Go's own.
func defaultCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "churnlab")
}

func newKindCommand(stdout, stderr io.Writer) *cobra.Command {
	kind := &cobra.Command{
		Use:   "kind",
		Short: "The kind target's parts: its node image and its container engine",
		Args:  cobra.NoArgs,
	}
	var cache string
	nodeImage := &cobra.Command{
		Use:   "node-image",
		Short: "Build the kind node image offline (Kubernetes " + kindnode.KubernetesVersion + "), print its name and tarball",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := controlplane.DefaultBinDir()
			if err != nil {
				return err
			}
			built, err := kindnode.Build(cmd.Context(), kindnode.Options{
				Binaries: kindnode.Binaries{ControlPlane: bin, Node: filepath.Join(bin, "node")},
				Cache:    filepath.Join(cache, "kind-node"),
				Progress: stderr,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%s\n", built.Ref, built.Tarball)
			return nil
		},
	}
	nodeImage.Flags().StringVar(&cache, "cache", defaultCache(), "where the image's rootfs, layers and tarballs are kept between builds")
	kind.AddCommand(nodeImage)
	return kind
}
