package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFDBStoreCompiles type-checks this package as the build tag fdb
// builds it, fdb.go included, against the FoundationDB Go bindings. The
// bindings need the FoundationDB C client (fdb_c.h, libfdb_c), which
// these machines do not have, so `go build -tags fdb` cannot run here;
// go/types can check the Go side with cgo faked. Every other dependency
// comes from the build cache's export data. This catches a store that no
// longer compiles against the bindings' API; it cannot run it.
func TestFDBStoreCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the package's dependencies; run without -short")
	}
	out, err := exec.Command("go", "list", "-e", "-deps", "-export", "-tags", "fdb", "-json", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]*listedPackage{}
	var self *listedPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		p := &listedPackage{}
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
		self = p // go list prints the package itself last
	}
	if !containsString(self.GoFiles, "fdb.go") {
		t.Fatalf("go list -tags fdb did not select fdb.go: %v", self.GoFiles)
	}
	c := &sourceChecker{fset: token.NewFileSet(), pkgs: pkgs, checked: map[string]*types.Package{}}
	c.exports = importer.ForCompiler(c.fset, "gc", func(path string) (io.ReadCloser, error) {
		p := pkgs[path]
		if p == nil || p.Export == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p.Export)
	})
	if _, err := c.check(self); err != nil {
		t.Fatal(err)
	}
}

type listedPackage struct {
	ImportPath, Dir, Export string
	GoFiles, CgoFiles       []string
	ImportMap               map[string]string
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sourceChecker type-checks from source the packages that have no export
// data (the ones that need cgo, and those that import them), and imports
// the rest from export data.
type sourceChecker struct {
	fset    *token.FileSet
	pkgs    map[string]*listedPackage
	checked map[string]*types.Package
	exports types.Importer
}

func (c *sourceChecker) Import(path string) (*types.Package, error) {
	return c.ImportFrom(path, "", 0)
}

func (c *sourceChecker) ImportFrom(path, _ string, _ types.ImportMode) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if p, ok := c.checked[path]; ok {
		return p, nil
	}
	p := c.pkgs[path]
	if p == nil {
		return nil, fmt.Errorf("package %s is not among the dependencies go list printed", path)
	}
	if p.Export != "" {
		return c.exports.Import(path)
	}
	return c.check(p)
}

func (c *sourceChecker) check(p *listedPackage) (*types.Package, error) {
	var files []*ast.File
	for _, name := range append(append([]string{}, p.GoFiles...), p.CgoFiles...) {
		f, err := parser.ParseFile(c.fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	var errs []error
	conf := types.Config{
		Importer:    c,
		FakeImportC: len(p.CgoFiles) > 0,
		Error:       func(err error) { errs = append(errs, err) },
	}
	pkg, _ := conf.Check(p.ImportPath, c.fset, files, nil)
	if len(errs) > 0 {
		return nil, fmt.Errorf("type-checking %s: %w", p.ImportPath, errors.Join(errs...))
	}
	c.checked[p.ImportPath] = pkg
	return pkg, nil
}
