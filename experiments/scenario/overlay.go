package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Set overrides one field of a scenario: Path as in error messages
// (baseline.replicas, events[1].at) and Value as it would be written in
// the file. `churnlab sweep --param` and `--set` make them.
type Set struct {
	Path, Value string
}

// String returns the set as the flag that makes it: --set path=value.
// Problems in its value are reported as coming from there.
func (s Set) String() string { return "--set " + s.Path + "=" + s.Value }

// ParseSet parses "path=value".
func ParseSet(s string) (Set, error) {
	path, value, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return Set{}, fmt.Errorf("override %q: want path=value, e.g. baseline.replicas=12", s)
	}
	return Set{Path: path, Value: value}, nil
}

// maxExtends bounds a chain of extends, which also stops a cycle.
const maxExtends = 8

// resolveExtends returns root with the file it extends, if any, merged
// under it: a scenario may write `extends: ../restart-storm.yaml` (a path
// from the extending file's directory, within the files it was parsed
// from) and only what it changes. Mappings merge key by key;
// anything else the extending file writes replaces the base's value.
// Every node from a base file is recorded in origin, so that a problem in
// a field that came from it is reported with that file's name and its
// own line there.
func resolveExtends(files *fileSet, file string, root *yaml.Node, depth int, origin origins) (*yaml.Node, error) {
	i := mappingIndex(root, "extends")
	if i < 0 {
		return root, nil
	}
	v := root.Content[i+1]
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		return nil, &Errors{List: []FieldError{{File: file, Pos: Pos{v.Line, v.Column}, Path: "extends",
			Msg: "want the path of the scenario file this one extends"}}}
	}
	if depth >= maxExtends {
		return nil, &Errors{List: []FieldError{{File: file, Pos: Pos{v.Line, v.Column}, Path: "extends",
			Msg: fmt.Sprintf("more than %d files extend each other; is there a cycle?", maxExtends)}}}
	}
	if files == nil {
		return nil, &Errors{List: []FieldError{{File: file, Pos: Pos{v.Line, v.Column}, Path: "extends",
			Msg: "a scenario given as bytes cannot extend a file; load it from a file"}}}
	}
	name := path.Join(path.Dir(files.names[file]), v.Value)
	if path.IsAbs(v.Value) { // from the root of the files
		name = strings.TrimPrefix(path.Clean(v.Value), "/")
	}
	data, err := fs.ReadFile(files.fsys, name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // named below as the user knows the file
		}
		return nil, &Errors{List: []FieldError{{File: file, Pos: Pos{v.Line, v.Column}, Path: "extends",
			Msg: fmt.Sprintf("open %s: %v", files.show(name), err)}}}
	}
	basePath := files.show(name)
	base, err := parseDocument(basePath, data)
	if err != nil {
		return nil, err
	}
	origin.mark(base, basePath)
	if base, err = resolveExtends(files, basePath, base, depth+1, origin); err != nil {
		return nil, err
	}
	child := &yaml.Node{Kind: yaml.MappingNode, Content: append(append([]*yaml.Node{}, root.Content[:i]...), root.Content[i+2:]...)}
	merge(base, child)
	return base, nil
}

// merge writes over's fields into base.
func merge(base, over *yaml.Node) {
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		j := mappingIndex(base, k.Value)
		switch {
		case j < 0:
			base.Content = append(base.Content, k, v)
		case base.Content[j+1].Kind == yaml.MappingNode && v.Kind == yaml.MappingNode:
			merge(base.Content[j+1], v)
		default:
			base.Content[j], base.Content[j+1] = k, v
		}
	}
}

func mappingIndex(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// applySet writes s into the node tree, creating the mappings on its path
// that the file leaves out. The value is then decoded and validated like
// any other; the nodes it writes are recorded in origin as the set's, so
// that a problem with one is reported as coming from --set path=value,
// not from a line of a file.
func applySet(root *yaml.Node, s Set, origin origins) error {
	fail := func(format string, args ...any) error {
		return &Errors{List: []FieldError{{File: s.String(), Path: s.Path, Msg: fmt.Sprintf(format, args...)}}}
	}
	n := root
	parts := strings.Split(s.Path, ".")
	for pi, part := range parts {
		name, index := part, -1
		if open := strings.IndexByte(part, '['); open >= 0 {
			if !strings.HasSuffix(part, "]") {
				return fail("bad index in %q", part)
			}
			i, err := strconv.Atoi(part[open+1 : len(part)-1])
			if err != nil || i < 0 {
				return fail("bad index in %q", part)
			}
			name, index = part[:open], i
		}
		if name == "" || n.Kind != yaml.MappingNode {
			return fail("no field %q here", part)
		}
		last := pi == len(parts)-1 && index < 0
		j := mappingIndex(n, name)
		if j < 0 {
			if index >= 0 {
				return fail("%s has no item %d", name, index)
			}
			child := &yaml.Node{Kind: yaml.MappingNode}
			if last {
				child = &yaml.Node{Kind: yaml.ScalarNode}
			}
			key := &yaml.Node{Kind: yaml.ScalarNode, Value: name}
			origin[key], origin[child] = s.String(), s.String()
			n.Content = append(n.Content, key, child)
			j = len(n.Content) - 2
		}
		next := n.Content[j+1]
		if index >= 0 {
			if next.Kind != yaml.SequenceNode || index >= len(next.Content) {
				return fail("%s has no item %d", name, index)
			}
			next = next.Content[index]
		}
		if pi == len(parts)-1 {
			if next.Kind != yaml.ScalarNode && next.Kind != 0 {
				return fail("%s is not a single value", s.Path)
			}
			// A new node, without the line of the value it replaces: the
			// value is the set's.
			value := &yaml.Node{Kind: yaml.ScalarNode, Value: s.Value}
			origin[value] = s.String()
			if index >= 0 {
				n.Content[j+1].Content[index] = value
			} else {
				key := &yaml.Node{Kind: yaml.ScalarNode, Value: name}
				origin[key] = s.String()
				n.Content[j], n.Content[j+1] = key, value
			}
			return nil
		}
		n = next
	}
	return nil
}
