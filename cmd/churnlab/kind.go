package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/engine"
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
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput{fmt.Errorf("churnlab kind: unknown command %q: want node-image or engine", args[0])}
			}
			return badInput{fmt.Errorf("churnlab kind: missing command: node-image or engine up|down")}
		},
	}
	var cache string
	nodeImage := &cobra.Command{
		Use:   "node-image",
		Short: "Build the kind node image offline (Kubernetes " + kindnode.KubernetesVersion + "), print its name and tarball",
		Args:  noArgs,
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

	engineCmd := &cobra.Command{
		Use:   "engine up|down",
		Short: "Start (and keep) or stop churnlab's private container engine, for repeated kind runs",
		Long: `up finds a Docker or Podman that answers, or else starts churnlab's private
dockerd (installing Debian's docker.io if need be) and leaves it running,
so that later --target kind runs reuse it; it prints the DOCKER_HOST that
reaches it. down stops that private daemon and removes its state; it
touches no other daemon.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || (args[0] != "up" && args[0] != "down") {
				return badInput{fmt.Errorf("churnlab kind engine: want up or down, got %q", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := controlplane.DefaultBinDir()
			if err != nil {
				return err
			}
			opts := engine.Options{State: filepath.Join(cache, "engine"), ExecRoot: engine.DefaultExecRoot, Capshim: filepath.Join(bin, "capshim"), Keep: true, Progress: stderr}
			if args[0] == "up" {
				e, err := engine.Ensure(cmd.Context(), opts)
				if err != nil {
					return err
				}
				for _, kv := range e.Env {
					fmt.Fprintln(stdout, kv)
				}
				return nil
			}
			stopped, err := engine.StopPrivate(opts)
			if err != nil {
				return err
			}
			if stopped {
				fmt.Fprintln(stderr, "engine: churnlab's private dockerd stopped, its state removed")
			} else {
				fmt.Fprintln(stderr, "engine: churnlab's private dockerd was not running")
			}
			return nil
		},
	}
	engineCmd.Flags().StringVar(&cache, "cache", defaultCache(), "where the private engine's state is kept")
	kind.AddCommand(nodeImage, engineCmd)
	return kind
}
