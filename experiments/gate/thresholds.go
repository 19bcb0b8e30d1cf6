package gate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/churnlab/churnlab/experiments/metrics"
)

// Thresholds is a thresholds file.
type Thresholds struct {
	File      string
	Reference string // root of the committed runs that changes are measured against
	Rules     []Rule
}

// Rule bounds one metric of one scenario, mode and system. Exactly one of
// Max, Min, MaxIncrease and MaxDecrease is set.
type Rule struct {
	Scenario, Mode, System, Metric string
	Max, Min                       *float64
	MaxIncrease, MaxDecrease       *float64 // fractions of the reference value
	Alpha                          float64  // live rules: the U test's level
	Line                           int      // in the thresholds file
}

// Live says whether the rule's mode is a live one, whose results are noisy.
func (r Rule) Live() bool { return !strings.HasPrefix(r.Mode, "sim") }

// Modes a rule may name.
var Modes = []string{"sim", "sim-live", "local", "kube", "kind"}

type fileRule struct {
	Scenario    string  `yaml:"scenario"`
	Mode        string  `yaml:"mode"`
	System      string  `yaml:"system"`
	Metric      string  `yaml:"metric"`
	Max         *string `yaml:"max"`
	Min         *string `yaml:"min"`
	MaxIncrease *string `yaml:"maxIncrease"`
	MaxDecrease *string `yaml:"maxDecrease"`
	Alpha       *string `yaml:"alpha"`
}

type file struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Reference  string      `yaml:"reference"`
	Rules      []yaml.Node `yaml:"rules"`
}

// Load reads and checks a thresholds file. Every problem is reported, each
// with the file, line and field.
func Load(path string) (*Thresholds, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse reads a thresholds file's contents; name is used in errors.
func Parse(name string, data []byte) (*Thresholds, error) {
	var problems []string
	fail := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("gate: thresholds file %s is empty: want apiVersion: churnlab/v1, kind: Gate, reference and rules (see results/gate.yaml)", name)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.APIVersion != "churnlab/v1" || f.Kind != "Gate" {
		fail(1, "want apiVersion: churnlab/v1 and kind: Gate, got %q and %q", f.APIVersion, f.Kind)
	}
	th := &Thresholds{File: name, Reference: f.Reference}
	if f.Reference == "" {
		fail(1, "reference: missing: the root of the committed runs changes are measured against (e.g. results)")
	}
	if len(f.Rules) == 0 {
		fail(1, "rules: none")
	}
	keys := metrics.SummaryKeys()
	for i := range f.Rules {
		node := &f.Rules[i]
		var fr fileRule
		if err := node.Decode(&fr); err != nil {
			fail(node.Line, "rules[%d]: %v", i, err)
			continue
		}
		if err := strictFields(node); err != nil {
			fail(node.Line, "rules[%d]: %v", i, err)
			continue
		}
		r := Rule{Scenario: fr.Scenario, Mode: fr.Mode, System: fr.System, Metric: fr.Metric, Line: node.Line, Alpha: 0.05}
		at := fmt.Sprintf("rules[%d]", i)
		if r.Scenario == "" {
			fail(r.Line, "%s.scenario: missing", at)
		}
		if !slices.Contains(Modes, r.Mode) {
			fail(r.Line, "%s.mode: %q, want one of %s", at, r.Mode, strings.Join(Modes, ", "))
		}
		if r.System != "baseline" && r.System != "reference" {
			fail(r.Line, "%s.system: %q, want baseline or reference", at, r.System)
		}
		if !slices.Contains(keys, r.Metric) {
			fail(r.Line, "%s.metric: %q is not a summary.json number; want one of %s", at, r.Metric, strings.Join(keys, ", "))
		}
		bounds := 0
		for _, b := range []struct {
			field string
			text  *string
			into  **float64
			pct   bool
		}{{"max", fr.Max, &r.Max, false}, {"min", fr.Min, &r.Min, false}, {"maxIncrease", fr.MaxIncrease, &r.MaxIncrease, true}, {"maxDecrease", fr.MaxDecrease, &r.MaxDecrease, true}} {
			if b.text == nil {
				continue
			}
			bounds++
			v, err := number(*b.text, b.pct)
			if err != nil {
				fail(r.Line, "%s.%s: %v", at, b.field, err)
				continue
			}
			*b.into = &v
		}
		if bounds != 1 {
			fail(r.Line, "%s: want exactly one of max, min, maxIncrease, maxDecrease; got %d", at, bounds)
		}
		if fr.Alpha != nil {
			a, err := strconv.ParseFloat(*fr.Alpha, 64)
			switch {
			case err != nil || a <= 0 || a >= 1:
				fail(r.Line, "%s.alpha: %q, want a level between 0 and 1, such as 0.05", at, *fr.Alpha)
			case !r.Live():
				fail(r.Line, "%s.alpha: only live rules test significance; %s results are compared exactly", at, r.Mode)
			default:
				r.Alpha = a
			}
		}
		th.Rules = append(th.Rules, r)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return th, nil
}

// strictFields rejects keys a rule does not have (yaml's KnownFields does
// not reach into a yaml.Node decoded on its own).
func strictFields(node *yaml.Node) error {
	known := []string{"scenario", "mode", "system", "metric", "max", "min", "maxIncrease", "maxDecrease", "alpha"}
	if node.Kind != yaml.MappingNode {
		return errors.New("want a mapping")
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if k := node.Content[i].Value; !slices.Contains(known, k) {
			return fmt.Errorf("unknown field %q (line %d); want %s", k, node.Content[i].Line, strings.Join(known, ", "))
		}
	}
	return nil
}

// number reads a bound: a plain number, or for a change a percentage
// ("10%") or a fraction.
func number(s string, pct bool) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if pct && strings.HasSuffix(t, "%") {
		t, scale = strings.TrimSuffix(t, "%"), 0.01
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		if pct {
			return 0, fmt.Errorf("%q is not a percentage such as 10%%", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v *= scale
	if pct && v < 0 {
		return 0, fmt.Errorf("%q: a change bound is not negative", s)
	}
	return v, nil
}
