// Package scenario reads churnlab's scenario files (apiVersion
// churnlab/v1): the cluster, the player workload, the config both systems
// deliver, each system's settings, a timeline of churn events, and how to
// shrink it all for a live run on one machine.
//
// Loading follows one chain, as kind's config does: the file is parsed to
// a YAML node tree, decoded strictly (unknown fields, duplicate keys,
// aliases and bad units are errors), given defaults in one place
// (applyDefaults: the 2023 incident's values, see SEED-FACTS.md), and
// validated. Every problem is gathered into one *Errors, each naming the
// file, line, column and field path:
//
//	restart-storm.yaml:7:11: cluster.uplink: bad bandwidth "1Gbs": missing unit (want e.g. 1Gbps, 100Mbps, 120MB/s)
//
// Units are written the way people write them: sizes "2MB" (decimal) or
// "1MiB" (binary), bandwidths "1Gbps" or "120MB/s", rates "85k/s",
// counts "250k", durations "5s", and "25%" where a count or percentage
// fits.
//
//	sc, err := scenariofile.Load("experiments/scenarios/restart-storm.yaml") // or scenario.ParseFS
//	live := sc.AtLiveScale()
package scenario
