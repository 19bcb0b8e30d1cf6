// Package report writes REPORT.md from what the repository measured: the
// summaries under results/, the calibration transcript
// (sim/testdata/calibration.txt), the sweep, the benchmark output
// (results/bench.txt) and the charts. The prose lives in REPORT.md.tmpl,
// a text/template whose functions read those files; every number that
// comes from a run is put there by a function, so REPORT.md cannot
// disagree with results/. A claim, run or chart the template names and
// the repository lacks is an error, not a blank.
//
// REPORT.md is never edited by hand: edit the template and run
// `churnlab report` (make report); TestReportIsCurrent fails otherwise.
//
//	err := report.Generate(".", w) // from the repository's root
package report
