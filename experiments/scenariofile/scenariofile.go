// Package scenariofile loads scenario files from the operating system:
// the one place a scenario touches it, so that package scenario, and the
// simulator that imports it, do no I/O of their own.
package scenariofile

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// Load reads, decodes, defaults and validates the scenario file at path,
// with sets overriding its fields, as scenario.ParseFS does: a relative
// extends is from the extending file's directory, an absolute one from
// the root. Messages name files as path does: relative to the working
// directory when path is relative, else absolute.
func Load(path string, sets ...scenario.Set) (*scenario.Scenario, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	files := osFiles{FS: os.DirFS("/")}
	if !filepath.IsAbs(path) {
		if files.cwd, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	return scenario.ParseFS(files, filepath.ToSlash(abs[1:]), sets...)
}

// osFiles is the machine's files, shown relative to cwd when it is set.
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
