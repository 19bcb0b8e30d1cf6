// Package plot draws churnlab's charts with gonum/plot: a Chart is lines
// over one x axis, with labelled reference marks (an uplink's cap, a
// sweep's knee), rendered to PNG; Results draws every chart of one
// scenario's results directory from its timeseries.csv and sweep.csv
// files:
//
//   - per mode (sim, sim-live, local): p99 latency on a log axis, uplink
//     egress against the uplink's cap, 429s per second, ready pods and
//     leaderboard staleness, baseline against reference;
//   - for a live mode with a sim-live prediction beside it: p99 and
//     egress, sim against live, for both systems;
//   - for a sweep: its metrics against the swept reconcile rate, the knee
//     marked.
//
// Every chart has a title naming the scenario and the mode, axes labelled
// with units, and a legend.
//
//	paths, err := plot.Results("results/restart-storm", sc)
package plot
