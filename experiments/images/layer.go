package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is every entry's modification time, so that layers are
// reproducible.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of a layer.
type File struct {
	Path   string      // absolute path in the image
	Source string      // a file on this machine to copy; or
	Data   []byte      // the contents; or
	Link   string      // a symlink's target; or, with none of them, a directory
	Mode   fs.FileMode // permission bits; 0 for Source's own, or 0644 (0755 for a directory)
}

// Layer returns a gzip layer that holds files and their parent
// directories. Entries are sorted by path; a later File for the same path
// replaces an earlier one.
func Layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, files); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
}

func writeTar(w io.Writer, files []File) error {
	byPath := map[string]File{}
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("image file %q: the path must be absolute", f.Path)
		}
		f.Path = path.Clean(f.Path)
		byPath[f.Path] = f
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = File{Path: dir}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		if err := writeEntry(tw, byPath[p]); err != nil {
			return fmt.Errorf("image file %s: %w", p, err)
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, f File) error {
	hdr := &tar.Header{Name: strings.TrimPrefix(f.Path, "/"), ModTime: epoch, Format: tar.FormatPAX, Mode: int64(f.Mode.Perm())}
	var body io.Reader
	switch {
	case f.Source != "":
		src, err := os.Open(f.Source)
		if err != nil {
			return err
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", f.Source)
		}
		if f.Mode == 0 {
			hdr.Mode = int64(st.Mode().Perm())
		}
		hdr.Typeflag, hdr.Size, body = tar.TypeReg, st.Size(), src
	case f.Data != nil:
		if f.Mode == 0 {
			hdr.Mode = 0o644
		}
		hdr.Typeflag, hdr.Size, body = tar.TypeReg, int64(len(f.Data)), bytes.NewReader(f.Data)
	case f.Link != "":
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
	default:
		if f.Mode == 0 {
			hdr.Mode = 0o755
		}
		hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if body != nil {
		if _, err := io.Copy(tw, body); err != nil {
			return err
		}
	}
	return nil
}

// DirLayer writes dir, a whole root filesystem (a debootstrap result, say),
// as a layer tarball at file, and returns that layer. Owners, modes, links
// and device nodes are kept; times are not.
func DirLayer(dir, file string) (v1.Layer, error) {
	out, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(out)
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err := tw.Close(); walkErr == nil {
		walkErr = err
	}
	if err := out.Close(); walkErr == nil {
		walkErr = err
	}
	if walkErr != nil {
		os.Remove(file)
		return nil, fmt.Errorf("layer of %s: %w", dir, walkErr)
	}
	return LayerFile(file)
}

// LayerFile returns the layer in file, an uncompressed tarball written by
// DirLayer.
func LayerFile(file string) (v1.Layer, error) {
	return tarball.LayerFromFile(file, tarball.WithCompressionLevel(gzip.BestSpeed))
}
