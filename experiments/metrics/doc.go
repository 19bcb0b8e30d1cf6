// Package metrics turns one run's observations into the files every mode
// writes, summary.json and timeseries.csv, and reads them back for the
// plots, the gate and the report; it also owns sweep.csv's format. The
// simulator and the live runner feed a Recorder the same way (one
// observation at a time, stamped with the time since the run started), so
// a sim run and a live run of a scenario can be compared column by column.
//
// Percentiles come from HDR histograms over every observation, never from
// averages of per-window percentiles. A summary key is null when the run
// does not measure it, and a time-series cell is empty for the same reason.
//
//	rec := metrics.NewRecorder()
//	rec.Request(at, 42*time.Millisecond, true)
//	rec.Egress(from, to, 2e6)
//	s := rec.Summary(metrics.Run{Scenario: "restart-storm", Mode: "sim", System: "baseline", Seed: 1, Duration: 5 * time.Minute})
//	s.Write(w)
//	rec.WriteTimeseries(w)
package metrics
