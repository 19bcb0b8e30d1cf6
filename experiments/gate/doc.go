// Package gate decides whether a set of results regressed, for CI. A
// thresholds file (results/gate.yaml) holds rules, each for one scenario,
// mode, system and summary.json metric: an absolute bound (max, min) or a
// bound on the change against the committed reference runs (maxIncrease,
// maxDecrease).
//
// Sim results are deterministic, so a sim rule compares one value with
// another exactly. Live results are noisy: a live rule takes every
// repetition it finds on each side and calls a change a regression only
// if a Mann-Whitney U test (golang.org/x/perf/benchmath) rejects "same
// distribution" at p < alpha and the medians differ by more than the
// rule allows. The report prints medians, their change and the verdict,
// as benchstat does.
//
//	th, err := gate.Load("results/gate.yaml")
//	report, err := gate.Check(th, []string{newResults})
//	report.Write(os.Stdout)
//	if report.Regressed() { ... }
package gate
