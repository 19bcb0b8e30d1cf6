package sim

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports keeps the simulator pure: no wall clock, no
// concurrency, no network, no operating system, no global randomness.
// A prefix entry ("net/") forbids the whole tree.
var forbiddenImports = []string{
	"crypto/rand", "math/rand", "net", "net/", "os", "os/", "runtime", "sync", "sync/",
	"syscall", "unsafe", "io/ioutil", "log", "context",
}

// wallClock lists the time functions that read or wait on the real clock.
var wallClock = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
}

// allowedRand lists what sim may use of math/rand/v2: seeded generators
// only, never the package-level functions that draw from a global source.
var allowedRand = map[string]bool{"New": true, "NewPCG": true, "Rand": true, "PCG": true, "Source": true}

// TestForbiddenImports checks every non-test file of sim/ for what would
// make a run depend on anything but its scenario and seed.
func TestForbiddenImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, problem := range impurities(fset, file) {
			t.Error(problem)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no sim source files found")
	}
}

// modulePath is this module's import path; a package under it is read
// from the module's directory.
const modulePath = "github.com/churnlab/churnlab"

// TestForbiddenImportsIndirect follows sim's imports through every
// package of this module it reaches: none of them may import what sim may
// not, or sim would do it through them.
func TestForbiddenImportsIndirect(t *testing.T) {
	seen := map[string]bool{}
	var visit func(dir string, chain []string)
	visit = func(dir string, chain []string) {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, path := range pkg.Imports {
			if forbidden(path) && len(chain) > 1 {
				t.Errorf("sim imports %q through %s", path, strings.Join(chain, " -> "))
			}
			rel, inModule := strings.CutPrefix(path, modulePath+"/")
			if !inModule || seen[path] {
				continue
			}
			seen[path] = true
			visit(filepath.Join("..", filepath.FromSlash(rel)), append(chain, path))
		}
	}
	visit(".", []string{"sim"})
	if len(seen) == 0 {
		t.Fatal("sim imports no package of its module; the walk is wrong")
	}
}

func forbidden(path string) bool {
	for _, f := range forbiddenImports {
		if path == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(path, f)) {
			return true
		}
	}
	return false
}

// TestImpuritiesFindsEachKind proves the checker catches what it claims to.
func TestImpuritiesFindsEachKind(t *testing.T) {
	sad := []struct {
		src  string
		want string
	}{
		{`import "time"; func f() { _ = time.Now() }`, "time.Now"},            // wall clock
		{`import t "time"; func f() { t.Sleep(1) }`, "time.Sleep"},            // renamed import
		{`import "math/rand/v2"; func f() { _ = rand.IntN(3) }`, "rand.IntN"}, // global source
		{`import "math/rand"; func f() {}`, `"math/rand"`},                    // v1
		{`import "net/http"; func f() {}`, `"net/http"`},                      // network
		{`import "os"; func f() {}`, `"os"`},                                  // OS
		{`func f() { go f() }`, "goroutine"},                                  // concurrency
		{`func f(c chan int) { select { case <-c: } }`, "select"},             // concurrency
	}
	for _, c := range sad {
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, "bad.go", "package sim; "+c.src, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		problems := impurities(fset, file)
		if len(problems) != 1 || !strings.Contains(problems[0], c.want) {
			t.Errorf("%s: got %q, want one problem naming %s", c.src, problems, c.want)
		}
	}
	happy := `import ("math/rand/v2"; "time"); func f(s uint64) { _ = rand.New(rand.NewPCG(s, 1)); _ = time.Duration(5) }`
	fset := token.NewFileSet()
	file, _ := parser.ParseFile(fset, "ok.go", "package sim; "+happy, 0)
	if p := impurities(fset, file); len(p) != 0 {
		t.Errorf("seeded rand and time.Duration flagged: %q", p)
	}
}

func impurities(fset *token.FileSet, file *ast.File) []string {
	var problems []string
	report := func(n ast.Node, what string) {
		problems = append(problems, fset.Position(n.Pos()).String()+": "+what)
	}
	local := map[string]string{} // local name -> import path, for time and math/rand/v2
	for _, imp := range file.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if forbidden(path) {
			report(imp, "imports "+strconv.Quote(path))
		}
		name := filepath.Base(path)
		if path == "math/rand/v2" {
			name = "rand"
		}
		if imp.Name != nil {
			name = imp.Name.Name
		}
		local[name] = path
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			report(n, "starts a goroutine")
		case *ast.SelectStmt:
			report(n, "uses select")
		case *ast.SelectorExpr:
			pkg, ok := n.X.(*ast.Ident)
			if !ok {
				break
			}
			switch local[pkg.Name] {
			case "time":
				if wallClock[n.Sel.Name] {
					report(n, "calls time."+n.Sel.Name+" (wall clock)")
				}
			case "math/rand/v2":
				if !allowedRand[n.Sel.Name] {
					report(n, "uses rand."+n.Sel.Name+" (the global source); draw from a Seed.Stream")
				}
			}
		}
		return true
	})
	return problems
}
