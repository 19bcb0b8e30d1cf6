// Package runner runs scenarios and writes their results. This file set
// holds the simulator runner: it builds a sim.World per system, drives it
// with a progress line, checks determinism on request, and writes
// <out>/<scenario>/sim/<system>/{summary.json,timeseries.csv}. The live
// runner (targets local, kube and kind) and the sweep will sit beside it.
//
//	outs, err := runner.RunSim(sc, runner.SimOptions{OutDir: "results", Progress: os.Stderr})
package runner
