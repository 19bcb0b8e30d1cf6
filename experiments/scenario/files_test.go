package scenario

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Load is scenariofile.Load for this package's tests, which cannot import
// it (it imports this package): the same files, shown the same way.
func Load(p string, sets ...Set) (*Scenario, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	files := osFiles{FS: os.DirFS("/")}
	if !filepath.IsAbs(p) {
		if files.cwd, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	return ParseFS(files, filepath.ToSlash(abs[1:]), sets...)
}

type osFiles struct {
	fs.FS
	cwd string
}

func (f osFiles) Show(name string) string {
	abs := "/" + filepath.FromSlash(name)
	if f.cwd != "" {
		if rel, err := filepath.Rel(f.cwd, abs); err == nil {
			return rel
		}
	}
	return abs
}
