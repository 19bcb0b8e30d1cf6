package baseline

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// operatorMetrics are the operator's Prometheus metrics, in a registry of
// its own.
type operatorMetrics struct {
	registry     *prometheus.Registry
	reconciles   *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	generation   prometheus.Gauge
	apiCalls     *prometheus.CounterVec
	bundleBytes  prometheus.Counter
	controllerOn prometheus.Gauge
}

func newOperatorMetrics() *operatorMetrics {
	m := &operatorMetrics{
		registry: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veltrix_reconciles_total", Help: "Full periodic reconciles of a pod, by operator replica.",
		}, []string{"replica"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veltrix_config_reloads_total", Help: "Reloads of every config object, for a starting pod or a config change, by replica.",
		}, []string{"replica"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veltrix_bundle_generation", Help: "Generation of the current bundle: each reload makes one, which every pod is sent.",
		}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veltrix_api_requests_total", Help: "Requests to the Kubernetes API server, by verb and HTTP status code.",
		}, []string{"verb", "code"}),
		bundleBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veltrix_bundle_bytes_served_total", Help: "Bundle bytes sent to pods through the egress limiter.",
		}),
		controllerOn: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veltrix_controller_enabled", Help: "1 while the periodic reconcile runs.",
		}),
	}
	m.registry.MustRegister(m.reconciles, m.reloads, m.generation, m.apiCalls, m.bundleBytes, m.controllerOn,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *operatorMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// countAPICalls wraps a client transport to count every API request by
// verb and status code (429s included: client-go retries them, and each
// try counts).
func (m *operatorMetrics) countAPICalls(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.apiCalls.WithLabelValues(apiVerb(req), code).Inc()
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// apiVerb names a request the way the API server's metrics do: a GET of a
// collection is a list (or a watch), of a named object a get.
func apiVerb(req *http.Request) string {
	switch req.Method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	case http.MethodGet:
	default:
		return strings.ToLower(req.Method)
	}
	if req.URL.Query().Get("watch") == "true" {
		return "watch"
	}
	// /api/v1/... or /apis/GROUP/VERSION/..., then an optional
	// namespaces/NS, then RESOURCE[/NAME[/SUBRESOURCE]].
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return "get"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 1 {
		return "list"
	}
	return "get"
}
