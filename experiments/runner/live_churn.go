package runner

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/churnlab/churnlab/experiments/driver"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/pod"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/internal/ctxsleep"
)

// liveChurn plays the scenario's timeline against the real Kubernetes
// API (and the system under test), each event at its time from zero.
type liveChurn struct {
	run         *liveRun
	system      liveSystem
	pods        gamePods
	controllers *driver.Driver // the declared controllers; nil for none
	rng         *rand.Rand
}

func (c *liveChurn) play(ctx context.Context) {
	c.rng = rand.New(rand.NewPCG(c.run.sc.Seed, 0xc4a2))
	events := slices.Clone(c.run.sc.Events)
	slices.SortStableFunc(events, func(a, b scenario.Event) int { return cmp.Compare(a.At, b.At) })
	for _, e := range events {
		if !ctxsleep.Sleep(ctx, time.Until(c.run.start.Add(e.At.D()))) {
			return
		}
		if err := c.apply(ctx, e); err != nil && ctx.Err() == nil {
			c.run.notef("%s at %s: %v", e.Name(), e.At, err)
		}
	}
}

func (c *liveChurn) apply(ctx context.Context, e scenario.Event) error {
	switch {
	case e.Autoscale != nil:
		return c.autoscale(ctx, e.Autoscale)
	case e.RestartStorm != nil:
		return c.restartStorm(ctx, e.RestartStorm)
	case e.RollingUpdate != nil:
		return c.rollingUpdate(ctx, e.RollingUpdate)
	case e.ConfigChange != nil:
		if c.controllers != nil {
			c.controllers.ConfigChanged()
		}
		return c.system.changeConfig(ctx, c.playedHunts(e.ConfigChange.Hunts))
	}
	played, err := c.system.play(ctx, e)
	if err == nil && !played {
		c.run.notef("%s at %s does not apply to the %s live run; skipped", e.Name(), e.At, c.run.system)
	}
	return err
}

// autoscale moves the Deployment's replicas to a.To one pod at a time,
// evenly over a.Over.
func (c *liveChurn) autoscale(ctx context.Context, a *scenario.Autoscale) error {
	deployments := c.run.kube.AppsV1().Deployments(c.run.cluster.Namespace)
	scale, err := deployments.GetScale(ctx, gameName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	from := int(scale.Spec.Replicas)
	steps := max(1, int(math.Abs(float64(a.To-from))))
	began := time.Now()
	for i := 1; i <= steps; i++ {
		if !ctxsleep.Sleep(ctx, time.Until(began.Add(a.Over.D()*time.Duration(i-1)/time.Duration(steps)))) {
			return ctx.Err()
		}
		replicas := from + (a.To-from)*i/steps
		s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: gameName, Namespace: c.run.cluster.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: int32(replicas)}}
		if _, err := deployments.UpdateScale(ctx, gameName, s, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// restartStorm deletes a fraction of the running pods, chosen by the
// scenario's seed, evenly over s.Over; the Deployment replaces each.
func (c *liveChurn) restartStorm(ctx context.Context, s *scenario.RestartStorm) error {
	names := c.pods.Running()
	slices.Sort(names)
	c.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	victims := names[:int(math.Round(s.Fraction*float64(len(names))))]
	began := time.Now()
	pods := c.run.kube.CoreV1().Pods(c.run.cluster.Namespace)
	for i, name := range victims {
		if !ctxsleep.Sleep(ctx, time.Until(began.Add(s.Over.D()*time.Duration(i)/time.Duration(len(victims))))) {
			return ctx.Err()
		}
		grace := int64(0)
		if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
			return fmt.Errorf("deleting pod %s: %w", name, err)
		}
		c.run.record(func(r *metrics.Recorder) { r.PodRestarted() })
	}
	return nil
}

// rollingUpdate sets the Deployment's rollout limits and changes its pod
// template, so that Kubernetes replaces every pod.
func (c *liveChurn) rollingUpdate(ctx context.Context, u *scenario.RollingUpdate) error {
	n := len(c.pods.Running())
	patch := fmt.Sprintf(`{"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":%s,"maxUnavailable":%s}},"template":{"metadata":{"annotations":{"churnlab.io/rolled-at":%q}}}}}`,
		intOrPercentJSON(u.MaxSurge), intOrPercentJSON(u.MaxUnavailable), time.Now().UTC().Format(time.RFC3339Nano))
	_, err := c.run.kube.AppsV1().Deployments(c.run.cluster.Namespace).Patch(ctx, gameName, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err == nil {
		c.run.record(func(r *metrics.Recorder) {
			for range n {
				r.PodRestarted()
			}
		})
	}
	return err
}

// intOrPercentJSON writes v as a Kubernetes IntOrString: 3 or "25%".
func intOrPercentJSON(v scenario.IntOrPercent) string {
	if v.Percent {
		return fmt.Sprintf(`"%d%%"`, v.Value)
	}
	return fmt.Sprint(v.Value)
}

// playedHunts picks n hunts that running pods play, so that a config
// change reaches some pod (the simulator draws among the hunts of the
// whole cluster, every one of which has pods); fewer if fewer are played.
func (c *liveChurn) playedHunts(n int) []string {
	seen := map[string]bool{}
	for _, name := range c.pods.Running() {
		seen[pod.HuntOf(name, c.run.sc.Config.Hunts)] = true
	}
	hunts := slices.Sorted(maps.Keys(seen))
	c.rng.Shuffle(len(hunts), func(i, j int) { hunts[i], hunts[j] = hunts[j], hunts[i] })
	return hunts[:min(n, len(hunts))]
}
