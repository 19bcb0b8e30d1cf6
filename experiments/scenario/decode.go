package scenario

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pos is a place in a scenario file.
type Pos struct {
	Line, Column int
}

// place is where a field was written: the file (a base file it extends,
// or the --set that wrote it) and the position in it, zero for a --set.
type place struct {
	file string
	Pos
}

// source remembers the file a scenario came from and where each field path
// was written, so that errors found after decoding still name a file and
// a line, and defaults apply only to fields the author left out.
type source struct {
	file string
	pos  map[string]place
}

// has reports whether the file (or a file it extends, or a --set) set the
// field at path.
func (s source) has(path string) bool {
	_, ok := s.pos[path]
	return ok
}

// at returns where path was written, or where its nearest written parent
// was, or the scenario's file with the zero Pos when neither was (a
// missing top-level field).
func (s source) at(path string) place {
	for p := path; p != ""; p = parentPath(p) {
		if pl, ok := s.pos[p]; ok {
			return pl
		}
	}
	return place{file: s.file}
}

// origins names where each node of a scenario's merged tree came from
// when that is not the scenario's own file: a file it extends, or the
// --set that made the node. extends and --set build one tree, so that the
// decoder still knows, for each node, which file's line it holds.
type origins map[*yaml.Node]string

// mark records every node under n as coming from file.
func (o origins) mark(n *yaml.Node, file string) {
	if n == nil {
		return
	}
	o[n] = file
	for _, c := range n.Content {
		o.mark(c, file)
	}
}

// of returns the file n came from; top is the scenario's own.
func (o origins) of(n *yaml.Node, top string) string {
	if f, ok := o[n]; ok {
		return f
	}
	return top
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// decoder turns a YAML node tree into Go values by reflection. Unlike
// yaml.v3's own decoding it keeps going after a problem, names each
// problem's field path, and never accepts a field the schema lacks.
type decoder struct {
	src    source
	origin origins
	errs   *Errors
}

// placeOf returns where node n was written.
func (d *decoder) placeOf(n *yaml.Node) place {
	return place{file: d.origin.of(n, d.src.file), Pos: Pos{n.Line, n.Column}}
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	pl := d.placeOf(n)
	d.errs.add(FieldError{
		File: pl.file, Pos: pl.Pos, Path: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

var unitValueType = reflect.TypeFor[unitValue]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		d.fail(n, path, "YAML aliases are not supported; write the value out")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the field unset, so its default applies
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if v.Addr().Type().Implements(unitValueType) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if err := v.Addr().Interface().(unitValue).parseUnit(s); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list, got %s", describe(n))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
		for i, item := range n.Content {
			itemPath := fmt.Sprintf("%s[%d]", path, i)
			d.src.pos[itemPath] = d.placeOf(item)
			d.decode(item, v.Index(i), itemPath)
		}
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.fail(n, path, "want true or false, got %q", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.fail(n, path, "want a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			d.fail(n, path, "want a non-negative whole number, got %q", s)
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "want a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("scenario: field %s has unsupported type %s", path, v.Type()))
	}
}

func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "want a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of fields, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		fieldPath := joinPath(path, key.Value)
		if key.Kind != yaml.ScalarNode {
			d.fail(key, path, "a field name must be plain text, got %s", describe(key))
			continue
		}
		idx, ok := fields[key.Value]
		if !ok {
			d.fail(key, fieldPath, "unknown field %q%s", key.Value, suggest(key.Value, fields))
			continue
		}
		if seen[key.Value] {
			d.fail(key, fieldPath, "field %q is set twice", key.Value)
			continue
		}
		seen[key.Value] = true
		if val.Tag != "!!null" {
			d.src.pos[fieldPath] = d.placeOf(key)
		}
		d.decode(val, v.Field(idx), fieldPath)
	}
}

// fieldsOf maps each yaml tag of t to its field index.
func fieldsOf(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
			fields[tag] = i
		}
	}
	return fields
}

// suggest names the known field closest to an unknown one, when one is
// close enough to be a likely typo.
func suggest(name string, fields map[string]int) string {
	best, bestDist := "", 3
	for f := range fields {
		if dist := editDistance(strings.ToLower(name), strings.ToLower(f)); dist < bestDist || (dist == bestDist && f < best) {
			best, bestDist = f, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parseDocument reads exactly one YAML document into a node tree.
func parseDocument(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Errors{List: []FieldError{{File: file, Msg: "file is empty"}}}
		}
		return nil, &Errors{List: []FieldError{yamlError(file, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &Errors{List: []FieldError{yamlError(file, err)}}
		}
		return nil, &Errors{List: []FieldError{{File: file, Pos: Pos{extra.Line, extra.Column},
			Msg: "file holds more than one YAML document; write one scenario per file"}}}
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &Errors{List: []FieldError{{File: file, Pos: Pos{doc.Line, doc.Column},
			Msg: "a scenario must be a mapping of fields (apiVersion, kind, metadata, ...)"}}}
	}
	return doc.Content[0], nil
}

// yamlError turns a syntax error from yaml.v3 into a FieldError with its
// line pulled out, so that it prints like every other problem.
func yamlError(file string, err error) FieldError {
	msg := err.Error()
	fe := FieldError{File: file, Msg: msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fe.Pos.Line, _ = strconv.Atoi(m[1])
		fe.Msg = "YAML syntax: " + strings.TrimPrefix(msg, m[0])
	}
	return fe
}
