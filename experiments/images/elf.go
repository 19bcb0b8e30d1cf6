package images

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// libraryDirs are where the dynamic loader looks on Debian amd64.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// WithLibraries returns files plus what their ELF executables and
// libraries need to run from root (a rootfs on this machine, "/" for the
// host): the program interpreter and every shared library they need,
// found as the dynamic loader finds them, with the symlinks on the way.
// Files that are not ELF, or are statically linked, add nothing.
func WithLibraries(root string, files []File) ([]File, error) {
	have := map[string]bool{}
	for _, f := range files {
		have[f.Path] = true
	}
	out := append([]File(nil), files...)
	queue := []string{}
	for _, f := range files {
		if f.Source != "" {
			queue = append(queue, f.Source)
		}
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		src := queue[0]
		queue = queue[1:]
		if seen[src] {
			continue
		}
		seen[src] = true
		needs, err := elfNeeds(src)
		if err != nil {
			return nil, err
		}
		for _, lib := range needs {
			inImage, err := findLibrary(root, lib)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", src, lib, err)
			}
			added, target, err := resolveInto(root, inImage, have)
			if err != nil {
				return nil, err
			}
			out = append(out, added...)
			queue = append(queue, filepath.Join(root, target))
		}
	}
	return out, nil
}

// elfNeeds returns the interpreter (an absolute path) and the DT_NEEDED
// names (bare library names) of file, or nothing when it is not a
// dynamically linked ELF file.
func elfNeeds(file string) ([]string, error) {
	if ok, err := isELF(file); !ok || err != nil {
		return nil, err
	}
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var needs []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("%s: reading its interpreter: %w", file, err)
			}
			needs = append(needs, strings.TrimRight(string(b), "\x00"))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return append(needs, libs...), nil
}

// findLibrary returns lib's path in root's filesystem: lib itself when it
// is absolute (an interpreter), else the first of libraryDirs that has it.
func findLibrary(root, lib string) (string, error) {
	if path.IsAbs(lib) {
		return lib, nil
	}
	for _, dir := range libraryDirs {
		p := path.Join(dir, lib)
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found under %s in %v", root, libraryDirs)
}

// resolveInto returns the Files for p in root's filesystem, following
// symlinks (each link becomes a File too) to the regular file at their
// end, whose path in root it also returns. Paths in have are not added
// again.
func resolveInto(root, p string, have map[string]bool) ([]File, string, error) {
	var out []File
	for range 40 {
		host := filepath.Join(root, p)
		st, err := os.Lstat(host)
		if err != nil {
			return nil, "", err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			if !have[p] {
				have[p] = true
				out = append(out, File{Path: p, Source: host})
			}
			return out, p, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return nil, "", err
		}
		if !have[p] {
			have[p] = true
			out = append(out, File{Path: p, Link: target})
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return nil, "", fmt.Errorf("%s: too many levels of symlinks", p)
}

// isELF says whether file starts with ELF's magic number.
func isELF(file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, len(elf.ELFMAG))
	n, _ := f.Read(magic)
	return n == len(magic) && string(magic) == elf.ELFMAG, nil
}
