package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// System is the config system a run simulates.
type System string

// The two systems every scenario compares.
const (
	Baseline  System = "baseline"  // the Veltrix-like operator
	Reference System = "reference" // the streaming config service
)

// Systems lists every system in report order.
var Systems = []System{Baseline, Reference}

// World is one simulated run of a scenario against one system: the engine,
// the models, and the recorder they report to. Build it with NewWorld and
// drive it with RunUntil; it does no I/O.
type World struct {
	sc     *scenario.Scenario
	system System
	seed   Seed
	eng    *Engine
	rec    Observer

	uplink   *Uplink
	etcd     *etcdLeader
	api      *apiServer
	cluster  *cluster
	lb       *balancer
	traffic  *traffic
	board    *leaderboard
	delivery delivery
	churn    *churn
	// controllers are the scenario's declared control-plane clients.
	controllers *controllers
}

// NewWorld builds the models for sc and system, seeded by seed, with the
// initial pods serving and the timeline scheduled. The run reports what it
// measures to obs (a metrics.Recorder).
func NewWorld(sc *scenario.Scenario, system System, seed uint64, obs Observer) (*World, error) {
	w := &World{sc: sc, system: system, seed: Seed(seed), eng: NewEngine(), rec: obs}
	// The uplink carries frames; only wireEfficiency of them is payload.
	w.uplink = NewUplink(w.eng, sc.Cluster.Uplink.BytesPerSecond()*sc.Model.Uplink.WireEfficiency, float64(sc.Model.Uplink.Buffer), func(from, to Time, bytes float64) {
		w.rec.Egress(dur(from), dur(to), bytes)
	})
	w.etcd = newEtcdLeader(w)
	w.api = newAPIServer(w)
	w.controllers = newControllers(w)
	switch system {
	case Baseline:
		w.delivery = newBundleDelivery(w)
	case Reference:
		w.delivery = newStreamDelivery(w)
	default:
		return nil, fmt.Errorf("sim: unknown system %q (want %s or %s)", system, Baseline, Reference)
	}
	w.lb = newBalancer(w)
	w.cluster = newCluster(w)
	w.traffic = newTraffic(w)
	w.board = newLeaderboard(w)
	w.churn = newChurn(w)
	w.etcd.start()
	w.api.start()
	w.cluster.start()
	w.controllers.start()
	w.traffic.start()
	w.board.start()
	w.churn.schedule()
	return w, nil
}

// RunUntil advances the run to t, or to its end if that comes first. A
// run covers [0, End): events due at End belong to no window of it.
func (w *World) RunUntil(t Time) { w.eng.RunUntil(min(t, w.End()-1)) }

// Now returns the run's virtual time.
func (w *World) Now() Time { return w.eng.Now() }

// End returns the run's length.
func (w *World) End() Time { return Time(w.sc.Duration) }

// Steps returns the number of events run so far.
func (w *World) Steps() uint64 { return w.eng.Steps() }

// Unmodelled lists what sc asks for that this model set does not simulate
// yet, so that a run can say so instead of silently ignoring it.
func Unmodelled(sc *scenario.Scenario) []string {
	var out []string
	for i, e := range sc.Events {
		if eventHandlers[e.Name()] == nil {
			out = append(out, fmt.Sprintf("events[%d] %s at %s", i, e.Name(), e.At))
		}
	}
	return out
}

// churn plays the scenario's timeline against the cluster and the
// delivery model.
type churn struct {
	w      *World
	rng    *rand.Rand // which pods a storm restarts, which hunts a change touches
	events []scenario.Event
}

func newChurn(w *World) *churn {
	events := slices.Clone(w.sc.Events)
	slices.SortStableFunc(events, func(a, b scenario.Event) int { return cmp.Compare(a.At, b.At) })
	return &churn{w: w, rng: w.seed.Stream("churn"), events: events}
}

func (c *churn) schedule() {
	for i, e := range c.events {
		if eventHandlers[e.Name()] != nil {
			c.w.eng.At(Time(e.At), c.fire, int64(i))
		}
	}
}

func (c *churn) fire(now Time, i int64) {
	e := c.events[i]
	eventHandlers[e.Name()](c, now, e)
}

// eventHandlers plays each kind of timeline event this model set covers,
// by its name in the file; Unmodelled names the others.
var eventHandlers = map[string]func(c *churn, now Time, e scenario.Event){
	"autoscale": func(c *churn, now Time, e scenario.Event) {
		cl := c.w.cluster
		from, to := cl.desired, e.Autoscale.To
		steps := max(from-to, to-from)
		if steps == 0 || e.Autoscale.Over == 0 {
			cl.scaleTo(now, to)
			return
		}
		for s := 1; s <= steps; s++ {
			replicas := from + (to-from)*s/steps
			at := now + Time(e.Autoscale.Over)*Time(s)/Time(steps)
			c.w.eng.At(at, func(t Time, _ int64) { cl.scaleTo(t, replicas) }, 0)
		}
	},
	"restartStorm": func(c *churn, now Time, e scenario.Event) {
		cl := c.w.cluster
		n := int(float64(len(cl.pods))*e.RestartStorm.Fraction + 0.5)
		order := c.rng.Perm(len(cl.pods))
		for k := range n {
			victim := cl.pods[order[k]]
			at := now
			if n > 1 {
				at += Time(e.RestartStorm.Over) * Time(k) / Time(n-1)
			}
			c.w.eng.At(at, cl.restart, int64(victim.id))
		}
	},
	"rollingUpdate": func(c *churn, now Time, e scenario.Event) {
		cl, ru := c.w.cluster, e.RollingUpdate
		cl.startRollout(now, ru.MaxSurge.Of(cl.desired, true), ru.MaxUnavailable.Of(cl.desired, false))
	},
	"configChange": func(c *churn, now Time, e scenario.Event) {
		order := c.rng.Perm(c.w.sc.Config.Hunts)
		c.w.delivery.change(now, order[:e.ConfigChange.Hunts])
		c.w.controllers.configChanged(now)
	},
	"operatorScale": func(c *churn, now Time, e scenario.Event) {
		if b, ok := c.w.delivery.(*bundleDelivery); ok {
			c.w.controllers.scale(now, b.op.kind, e.OperatorScale.Replicas)
		}
	},
	"controllerOff": func(c *churn, now Time, e scenario.Event) {
		if b, ok := c.w.delivery.(*bundleDelivery); ok {
			c.w.controllers.pause(now, b.op.kind, Time(e.ControllerOff.For))
		}
	},
	"nodeAdd": func(c *churn, now Time, e scenario.Event) {
		n := e.NodeAdd.Nodes
		for k := range n {
			at := now
			if n > 1 {
				at += Time(e.NodeAdd.Over) * Time(k) / Time(n-1)
			}
			c.w.eng.At(at, func(t Time, _ int64) { c.w.cluster.addNode(t) }, 0)
		}
	},
	"apiServerRestart": func(c *churn, now Time, e scenario.Event) {
		c.w.api.restart(now, Time(e.APIRestart.For))
	},
}

// dur converts virtual time to the offset the recorder keys windows by.
func dur(t Time) time.Duration { return time.Duration(t) }

// ReconcileRate is the baseline operator's completed reconciles a second
// per replica between from and to; zero for the reference system.
func (w *World) ReconcileRate(from, to Time) float64 {
	b, ok := w.delivery.(*bundleDelivery)
	if !ok || to <= from {
		return 0
	}
	total := int64(0)
	for sec := int(from / Second); sec < int(to/Second) && sec < len(b.op.reconciles); sec++ {
		total += b.op.reconciles[sec]
	}
	return float64(total) / (to - from).Seconds() / float64(max(1, len(b.op.live())))
}
