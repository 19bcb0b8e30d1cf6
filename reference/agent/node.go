package agent

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The headers of a NodeServer's /fragment answer.
const (
	HeaderVersion = "X-Config-Version" // the fragment's version
	HeaderHeld    = "X-Config-Held"    // "true" when the node held the hunt before this pod asked: nothing crossed the uplink for it
	HeaderLength  = "X-Fragment-Length"
)

// NodeServer serves an Agent to the pods of its node over HTTP, where the
// agent runs as a process of its own (cmd/nodeagent, a DaemonSet):
//
//   - GET /fragment?pod=P&hunt=H acquires H for pod P and answers with
//     the fragment (its length, version and whether the node held it in
//     the headers), then holds the answer open: the pod holds its hunt
//     for as long as it holds that connection, and is released when it
//     closes (the pod stopped).
//   - GET /updates streams a line "HUNT VERSION UNIX_NANOS" for every
//     fragment that lands in the node's L2, for a runner that measures
//     propagation.
//
// Pass its Updated to the agent as Options.OnUpdate.
type NodeServer struct {
	Agent *Agent
	// Now is the clock of the /updates lines; configurable so that tests
	// can fix it. Default time.Now.
	Now func() time.Time

	mu          sync.Mutex
	subscribers map[chan string]struct{}
}

// Updated tells the /updates subscribers that hunt's version landed.
func (s *NodeServer) Updated(hunt string, version uint64) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	line := fmt.Sprintf("%s %d %d\n", hunt, version, now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.subscribers {
		select {
		case c <- line:
		default: // a subscriber this far behind loses lines rather than stall the agent
		}
	}
}

// ServeHTTP implements http.Handler.
func (s *NodeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/fragment":
		s.fragment(w, r)
	case "/updates":
		s.updates(w, r)
	case "/healthz":
		fmt.Fprintln(w, "ok")
	default:
		http.NotFound(w, r)
	}
}

func (s *NodeServer) fragment(w http.ResponseWriter, r *http.Request) {
	pod, hunt := r.URL.Query().Get("pod"), r.URL.Query().Get("hunt")
	if pod == "" || hunt == "" {
		http.Error(w, "agent: /fragment needs ?pod=NAME&hunt=HUNT", http.StatusBadRequest)
		return
	}
	_, held := s.Agent.Versions()[hunt]
	defer s.Agent.Release(pod)
	fragment, version, err := s.Agent.Acquire(r.Context(), pod, hunt)
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
		return
	}
	w.Header().Set(HeaderVersion, strconv.FormatUint(version, 10))
	w.Header().Set(HeaderHeld, strconv.FormatBool(held))
	w.Header().Set(HeaderLength, strconv.Itoa(len(fragment)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(fragment)                     //nolint:errcheck // a pod gone is released below
	http.NewResponseController(w).Flush() //nolint:errcheck // as above
	<-r.Context().Done()
}

func (s *NodeServer) updates(w http.ResponseWriter, r *http.Request) {
	c := make(chan string, 1024)
	s.mu.Lock()
	if s.subscribers == nil {
		s.subscribers = map[chan string]struct{}{}
	}
	s.subscribers[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subscribers, c)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/plain")
	rc := http.NewResponseController(w)
	rc.Flush() //nolint:errcheck // the subscriber sees the headers now
	for {
		select {
		case <-r.Context().Done():
			return
		case line := <-c:
			if _, err := w.Write([]byte(line)); err != nil {
				return
			}
			rc.Flush() //nolint:errcheck // a failed write ends the loop
		}
	}
}

// ParseUpdate reads one line of a NodeServer's /updates stream.
func ParseUpdate(line string) (hunt string, version uint64, at time.Time, err error) {
	f := strings.Fields(line)
	bad := func() (string, uint64, time.Time, error) {
		return "", 0, time.Time{}, fmt.Errorf("agent: update line %q is not \"HUNT VERSION UNIX_NANOS\"", line)
	}
	if len(f) != 3 {
		return bad()
	}
	version, err = strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return bad()
	}
	nanos, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return bad()
	}
	return f[0], version, time.Unix(0, nanos), nil
}
