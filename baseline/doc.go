// Package baseline is the real Veltrix-like operator churnlab measures the
// fix against: a controller-runtime operator that behaves the way
// veltrix-operator v0.14.7 did in the 2023 incident (SEED-FACTS F4, F9,
// F11, T2, T3).
//
//   - Config lives in VeltrixConfig objects (a CRD), many of them, together
//     the bundle's size (2 MB in the seed; etcd takes at most 1.5 MiB per
//     request and a ConfigMap 1 MiB, so one object cannot hold it).
//   - When a game pod (re)starts, the operator reloads every config object
//     straight from the API server, one GET each with no cache, builds the
//     full bundle (gzip optional) and marks the pod (one replica does, the
//     replicas taking turns); the pod then pulls the
//     bundle from the operator's bundle endpoint, through an egress limiter
//     that stands in for the config store's uplink. Pods already running
//     when the operator starts are adopted: they have their config.
//   - Every reload is a new generation of the bundle. Every pod gets a
//     full reconcile every 5 s (RequeueAfter): a LIST of every config
//     object (F9; optionally more GETs and PATCHes of the pod, to match a
//     scenario's apiCallsPerReconcile); a pod on an older
//     generation is marked again with the current one, and pulls the
//     whole bundle again (F5, F6). A LIST that finds a changed object
//     reloads them all: that is how a config change reaches the pods. Each
//     replica keeps its own record of the config, so each reloads once.
//     Pods reconciled together stay in step, so the load comes in bursts.
//   - Each of Replicas reconciles every pod on its own (T2), the controller
//     can be switched off at run time (T3: no API calls until it is back on),
//     and the client's QPS and burst are settings.
//
// It runs under its own RBAC identity (Install creates it): API Priority
// and Fairness exempts system:masters, so an admin-run operator would
// never see a 429. Its Prometheus metrics count reconciles, API calls by
// verb and code, and bundle bytes served.
//
//	op, err := baseline.New(cfg, baseline.Options{Namespace: "default", Replicas: 3})
//	go op.Run(ctx)                      // reconcilers
//	http.ListenAndServe(addr, op.Handler()) // /bundle, /metrics, /admin/controller
package baseline
