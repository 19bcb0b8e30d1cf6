// Package load is the traffic side of a live run: a load balancer that
// learns which game pods to use only through active health checks, as
// the 2023 cluster's did (F7), and vegeta attacks through it at a
// scenario's rate, with players' retries of failed requests, recorded
// into the same metrics.Recorder the simulator
// uses and, raw, in vegeta's own format for `vegeta report`.
//
//	lb := load.NewBalancer(sc.Workload.HealthCheck, "/healthz")
//	go lb.Run(ctx)
//	lb.Add("127.0.0.1:8081")
//	err := load.Attack(ctx, load.AttackOptions{Target: "http://" + addr + "/play", Rate: 850, Duration: time.Minute}, rec.Request, raw)
package load
