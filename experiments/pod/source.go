package pod

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/internal/ctxsleep"
	"github.com/churnlab/churnlab/reference/agent"
	"github.com/churnlab/churnlab/reference/cache"
)

// Source is how a system delivers config to a pod.
type Source interface {
	// Serve gets p its config, calls loaded once p has it, with the bytes
	// that fetch moved over the uplink, and keeps it current until ctx
	// ends (the pod went away). It returns early only when it cannot get
	// p config at all.
	Serve(ctx context.Context, p *Pod, loaded func(uplinkBytes int64)) error
	// Unload is called once p is gone.
	Unload(p *Pod)
}

// retryEvery is how long a pod waits after a failed fetch.
const retryEvery = time.Second

// BundleSource is the baseline's delivery: a pod waits until the operator
// has prepared its bundle and marked it (baseline.BundleAnnotation), then
// pulls the whole bundle from the operator's bundle endpoint; and pulls
// it again whenever the operator marks it with a new version.
type BundleSource struct {
	URL string // the operator's bundle endpoint, e.g. http://127.0.0.1:8080 (behind the uplink)
	// OperatorStarted is when the operator started; it adopts pods that
	// started before, which have their config already.
	OperatorStarted time.Time
	Client          *http.Client // default http.DefaultClient
}

// Serve implements Source.
func (s *BundleSource) Serve(ctx context.Context, p *Pod, loaded func(uplinkBytes int64)) error {
	have := ""      // the version last pulled
	waiting := true // for the first config
	if start := p.Object().Status.StartTime; start != nil && start.Time.Before(s.OperatorStarted) {
		waiting = false // adopted: it has the config it started with
		loaded(0)
	}
	for {
		want := p.Object().Annotations[baseline.BundleAnnotation]
		if want != "" && want != have {
			version, n, err := s.pull(ctx, p)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				if !ctxsleep.Sleep(ctx, retryEvery) {
					return nil
				}
			default:
				have = version
				if waiting {
					waiting = false
					loaded(n)
				}
			}
			continue
		}
		select {
		case <-p.Changed():
		case <-ctx.Done():
			return nil
		}
	}
}

// pull reads p's bundle to the end and returns its version and size.
func (s *BundleSource) pull(ctx context.Context, p *Pod) (string, int64, error) {
	u := fmt.Sprintf("%s/bundle?namespace=%s&pod=%s", s.URL, url.QueryEscape(p.Namespace), url.QueryEscape(p.Name))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return "", n, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", n, fmt.Errorf("bundle of %s: %s", p.Name, resp.Status)
	}
	return resp.Header.Get("X-Bundle-Version"), n, nil
}

// Unload implements Source: the baseline keeps nothing per pod.
func (s *BundleSource) Unload(*Pod) {}

// AgentSource is the reference's delivery: one agent per node, started
// with the node's first pod, holds the stream and the node's L2 cache;
// a pod acquires its hunt's fragment through it.
type AgentSource struct {
	opts AgentSourceOptions
	ctx  context.Context // agents run until it ends

	mu     sync.Mutex
	agents map[string]*agent.Agent // by node
	wg     sync.WaitGroup
}

// AgentSourceOptions configures an AgentSource.
type AgentSourceOptions struct {
	Endpoints []string      // the service's replicas
	Dir       string        // L2 caches go in Dir/<node>
	Hunts     int           // pods are spread over hunts h-0 ... h-(Hunts-1) by name
	Debounce  time.Duration // the agents' restart debounce (R3)
	// OnUpdate, if set, is called when a fragment lands in a node's L2.
	OnUpdate func(node, hunt string, version uint64)
}

// NewAgentSource returns a source whose agents run until ctx ends; Wait
// waits for them.
func NewAgentSource(ctx context.Context, opts AgentSourceOptions) (*AgentSource, error) {
	if len(opts.Endpoints) == 0 || opts.Hunts < 1 || opts.Dir == "" {
		return nil, errors.New("pod: an agent source needs endpoints, a cache directory and at least one hunt")
	}
	return &AgentSource{opts: opts, ctx: ctx, agents: map[string]*agent.Agent{}}, nil
}

// HuntOf returns the hunt a pod plays: its name hashed over hunts.
func HuntOf(pod string, hunts int) string {
	h := fnv.New32a()
	h.Write([]byte(pod))
	return fmt.Sprintf("h-%d", h.Sum32()%uint32(hunts))
}

// Serve implements Source: the node's agent keeps the fragment current.
// The fetch moved the fragment over the uplink unless the node held it.
func (s *AgentSource) Serve(ctx context.Context, p *Pod, loaded func(uplinkBytes int64)) error {
	a, err := s.agentFor(p.Node)
	if err != nil {
		return err
	}
	hunt := HuntOf(p.Name, s.opts.Hunts)
	_, held := a.Versions()[hunt]
	fragment, _, err := a.Acquire(ctx, p.Name, hunt)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if held {
		loaded(0)
	} else {
		loaded(int64(len(fragment)))
	}
	<-ctx.Done()
	return nil
}

// Unload implements Source: the hunt stays on the node's stream for the
// debounce window.
func (s *AgentSource) Unload(p *Pod) {
	s.mu.Lock()
	a := s.agents[p.Node]
	s.mu.Unlock()
	if a != nil {
		a.Release(p.Name)
	}
}

// Wait waits until every agent has stopped (after the context ends).
func (s *AgentSource) Wait() { s.wg.Wait() }

func (s *AgentSource) agentFor(node string) (*agent.Agent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.agents[node]; ok {
		return a, nil
	}
	dir := filepath.Join(s.opts.Dir, node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l2, err := cache.OpenL2(dir)
	if err != nil {
		return nil, err
	}
	// Each node starts on its own replica, as agents spread in a cluster.
	endpoints := make([]string, len(s.opts.Endpoints))
	for i := range endpoints {
		endpoints[i] = s.opts.Endpoints[(len(s.agents)+i)%len(endpoints)]
	}
	opts := agent.Options{Endpoints: endpoints, Node: node, L2: l2, Debounce: s.opts.Debounce, Seed: uint64(len(s.agents))}
	if s.opts.OnUpdate != nil {
		opts.OnUpdate = func(hunt string, version uint64) { s.opts.OnUpdate(node, hunt, version) }
	}
	a, err := agent.New(opts)
	if err != nil {
		return nil, err
	}
	s.agents[node] = a
	s.wg.Add(1)
	go func() { defer s.wg.Done(); a.Run(s.ctx) }() //nolint:errcheck // nil when ctx ends
	return a, nil
}

// NodeAgentSource is the reference's delivery to a pod that runs in its
// own container: its node's agent (cmd/nodeagent, an agent.NodeServer)
// serves the pod its hunt's fragment and holds it for as long as the pod
// holds the connection.
type NodeAgentSource struct {
	URL    string // the node's agent, e.g. http://$HOST_IP:7790
	Hunts  int    // pods are spread over hunts h-0 ... h-(Hunts-1) by name (HuntOf)
	Client *http.Client
}

// Serve implements Source. A connection to the agent that breaks (the
// agent restarted) is made again; loaded is called once, with the
// fragment's size unless the node held it.
func (s *NodeAgentSource) Serve(ctx context.Context, p *Pod, loaded func(uplinkBytes int64)) error {
	if s.Hunts < 1 {
		return fmt.Errorf("pod: a node agent source needs at least one hunt, got %d", s.Hunts)
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	u := fmt.Sprintf("%s/fragment?pod=%s&hunt=%s", s.URL, url.QueryEscape(p.Name), url.QueryEscape(HuntOf(p.Name, s.Hunts)))
	first := true
	for ctx.Err() == nil {
		err := s.hold(ctx, client, u, func(n int64) {
			if first {
				first = false
				loaded(n)
			}
		})
		if err != nil && ctx.Err() == nil && first {
			// Not even the first fragment: say why now, then try again.
			log.Printf("pod %s: %v", p.Name, err)
		}
		if !ctxsleep.Sleep(ctx, retryEvery) {
			break
		}
	}
	return nil
}

// hold asks the agent for the pod's fragment, reads it, calls got with
// the bytes that crossed the uplink for it, and holds the connection
// until it breaks or ctx ends.
func (s *NodeAgentSource) hold(ctx context.Context, client *http.Client, u string, got func(uplinkBytes int64)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("node agent: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	n, err := strconv.ParseInt(resp.Header.Get(agent.HeaderLength), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("node agent: bad %s %q", agent.HeaderLength, resp.Header.Get(agent.HeaderLength))
	}
	if _, err := io.CopyN(io.Discard, resp.Body, n); err != nil {
		return fmt.Errorf("node agent: reading the fragment: %w", err)
	}
	if resp.Header.Get(agent.HeaderHeld) == "true" {
		n = 0
	}
	got(n)
	_, err = io.Copy(io.Discard, resp.Body) // until the agent or the pod goes
	return err
}

// Unload implements Source: closing the connection released the hunt.
func (s *NodeAgentSource) Unload(*Pod) {}
