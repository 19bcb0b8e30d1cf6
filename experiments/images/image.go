package images

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is a container image to assemble.
type Image struct {
	Refs       []string // its names, such as registry.k8s.io/pause:3.10.1; the first is its main one
	Layers     []v1.Layer
	Entrypoint []string
	Cmd        []string
	Env        []string
	StopSignal string // "" for SIGTERM
}

// Build returns img as a go-containerregistry image, for linux/amd64.
func (img Image) Build() (v1.Image, error) {
	base, err := mutate.AppendLayers(empty.Image, img.Layers...)
	if err != nil {
		return nil, err
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env = img.Entrypoint, img.Cmd, img.Env
	cf.Config.StopSignal = img.StopSignal
	return mutate.ConfigFile(base, cf)
}

// Write writes images as one docker-save tarball at file, each under
// every one of its Refs.
func Write(file string, images ...Image) error {
	refs := map[name.Reference]v1.Image{}
	for _, img := range images {
		if len(img.Refs) == 0 {
			return fmt.Errorf("writing %s: an image has no name", file)
		}
		built, err := img.Build()
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Refs[0], err)
		}
		for _, r := range img.Refs {
			tag, err := name.NewTag(r)
			if err != nil {
				return fmt.Errorf("image name %q: %w", r, err)
			}
			refs[tag] = built
		}
	}
	tmp := file + ".partial"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}
