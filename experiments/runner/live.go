package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/churnlab/churnlab/experiments/driver"
	"github.com/churnlab/churnlab/experiments/load"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/pod"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/uplink"
	"github.com/churnlab/churnlab/internal/ctxsleep"
	"github.com/churnlab/churnlab/sim"
)

// LiveOptions tunes a live run.
type LiveOptions struct {
	Target   Target
	Systems  []sim.System // default: every system
	OutDir   string       // results root; files go to OutDir/<scenario>/<target>/<system>/
	Progress io.Writer    // progress lines; nil for none
	// Uplink shapes config egress: UplinkTokenBucket (default) or UplinkTC.
	Uplink string
	// InjectPushDelay, for tests only, makes every configd push wait this
	// long (server.Options.InjectPushDelay): a regression of the real
	// code for showing that the live gate catches one.
	InjectPushDelay time.Duration
}

// The uplinks a live run can shape config egress with.
const (
	UplinkTokenBucket = "token-bucket" // a token bucket in this process (package uplink's Link)
	UplinkTC          = "tc"           // tbf on a veth into a network namespace the run creates (root)
)

// LiveOutput is one system's live result.
type LiveOutput struct {
	System  sim.System
	Dir     string // where summary.json, timeseries.csv and vegeta.bin were written
	Summary *metrics.Summary
}

// The game pods of a live run: a Deployment in the cluster's namespace.
const (
	gameName     = "game"
	gameSelector = "app=game"
)

var gameLabels = map[string]string{"app": "game"}

// liveSteps are the steps of one system's run, for the progress line,
// each with about how long it takes on a 2-core machine; the run step
// takes the scenario's live duration, and the bar moves with its clock.
var liveSteps = []struct {
	name  string
	takes time.Duration
}{
	{"control plane", 15 * time.Second},
	{"install", 5 * time.Second},
	{"game pods", 5 * time.Second},
	{"start system", 5 * time.Second},
	{"pods in rotation", 15 * time.Second},
	{"run", 0}, // live.duration
	{"write results", 0},
}

// stepRun is liveSteps' run.
const stepRun = 5

// LiveSetup is about how long a system's live run takes besides the
// scenario's live time: the control plane, the install, the first pods
// and their health checks, measured on a 2-core machine (liveSteps' sum,
// 45 s).
var LiveSetup = func() (sum time.Duration) {
	for _, s := range liveSteps {
		sum += s.takes
	}
	return sum
}()

// LiveEstimate is about how long RunLive takes for systems.
func LiveEstimate(sc *scenario.Scenario, systems int) time.Duration {
	return time.Duration(systems) * (sc.Live.Duration.D() + LiveSetup)
}

// RunLive plays sc at live scale (Scenario.AtLiveScale) against each
// system in turn, each on a fresh cluster from opts.Target, and writes
// summary.json, timeseries.csv, vegeta's raw results (vegeta.bin) and
// its report of them (vegeta.txt) for each. Everything a run starts is
// stopped when it ends, fails or ctx is cancelled; files are written only
// for a run that finished.
func RunLive(ctx context.Context, sc *scenario.Scenario, opts LiveOptions) ([]LiveOutput, error) {
	systems := opts.Systems
	if len(systems) == 0 {
		systems = sim.Systems
	}
	live := sc.AtLiveScale()
	progress := newProgress(opts.Progress)
	for i, e := range sc.Events {
		if e.At >= sc.Live.Duration {
			progress.note("live %s: events[%d] %s at %s is past live.duration %s; the live run ends before it", sc.Metadata.Name, i, e.Name(), e.At, sc.Live.Duration)
		}
	}
	// A target that holds something across its clusters (the kind
	// target's engine) lets it go when the runs are over.
	if closer, ok := opts.Target.(interface{ Close() error }); ok {
		defer func() {
			if err := closer.Close(); err != nil {
				progress.note("%s target: %v", opts.Target.Name(), err)
			}
		}()
	}
	var outs []LiveOutput
	for _, system := range systems {
		run := &liveRun{
			sc: live, system: system, target: opts.Target, progress: progress, uplink: opts.Uplink, injectPushDelay: opts.InjectPushDelay,
			dir: filepath.Join(opts.OutDir, sc.Metadata.Name, opts.Target.Name(), string(system)),
		}
		out, err := run.run(ctx)
		if err != nil {
			return outs, fmt.Errorf("live %s/%s: %w", sc.Metadata.Name, system, err)
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// gamePods are the game pods a run follows: a pod.Realizer that runs
// their programs in this process, or a pod.Observer of pods that run
// their own (cmd/podagent, in the cluster).
type gamePods interface {
	Run(ctx context.Context) error
	Pods() (total, ready int)
	Running() []string
	Lookup(name string) *pod.Pod
}

// liveRun is one system's live run.
type liveRun struct {
	sc              *scenario.Scenario // at live scale
	system          sim.System
	target          Target
	uplink          string        // LiveOptions.Uplink
	injectPushDelay time.Duration // LiveOptions.InjectPushDelay
	progress        *progress
	dir             string // results

	cluster  *Cluster
	kube     kubernetes.Interface
	podsMu   sync.Mutex
	pods     gamePods // set once the game pods are followed
	link     uplink.Uplink
	tmp      string    // scratch: stores, L2 caches
	start    time.Time // the run's time zero; zero until the load starts
	startMu  sync.Mutex
	feed     chan func(*metrics.Recorder)
	notesMu  sync.Mutex
	notes    []string
	timersWg sync.WaitGroup
	scrapes  metrics.ScrapeLog // written by sample only
}

// step shows that step i of liveSteps has begun.
func (l *liveRun) step(i int, detail string) { l.stepAt(i, 0, detail) }

// stepAt shows step i of liveSteps, elapsed into it: the bar is the
// share of the run's expected time (LiveSetup plus live.duration) done.
func (l *liveRun) stepAt(i int, elapsed time.Duration, detail string) {
	var done, total time.Duration
	for j, s := range liveSteps {
		takes := s.takes
		if j == stepRun {
			takes = l.sc.Duration.D()
		}
		total += takes
		if j < i {
			done += takes
		}
	}
	done = min(done+elapsed, total)
	l.progress.show(fmt.Sprintf("live %s/%s", l.sc.Metadata.Name, l.system),
		int(done/time.Second), int(total/time.Second), fmt.Sprintf("step %d/%d %s%s", i+1, len(liveSteps), liveSteps[i].name, detail))
}

// notef keeps a note for the summary's reader, and shows it.
func (l *liveRun) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.notesMu.Lock()
	l.notes = append(l.notes, msg)
	l.notesMu.Unlock()
	l.progress.note("live %s/%s: %s", l.sc.Metadata.Name, l.system, msg)
}

// record hands f to the goroutine that owns the recorder.
func (l *liveRun) record(f func(*metrics.Recorder)) { l.feed <- f }

// since is the run time of t.
func (l *liveRun) since(t time.Time) time.Duration {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	return t.Sub(l.start)
}

// started reports whether t is after time zero.
func (l *liveRun) started(t time.Time) bool {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	return !l.start.IsZero() && !t.Before(l.start)
}

// after calls f after d unless ctx ends first.
func (l *liveRun) after(ctx context.Context, d time.Duration, f func()) {
	l.timersWg.Add(1)
	go func() {
		defer l.timersWg.Done()
		if ctxsleep.Sleep(ctx, d) {
			f()
		}
	}()
}

func (l *liveRun) run(parent context.Context) (out LiveOutput, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if l.tmp, err = os.MkdirTemp("", "churnlab-live-"); err != nil {
		return out, err
	}
	defer os.RemoveAll(l.tmp)

	l.step(0, "")
	if l.cluster, err = l.target.Up(ctx, l.sc, l.progress); err != nil {
		return out, err
	}
	defer l.cluster.Down()
	if l.kube, err = kubernetes.NewForConfig(l.cluster.Admin); err != nil {
		return out, err
	}
	switch l.uplink {
	case "", UplinkTokenBucket:
		l.link = uplink.New(l.sc.Cluster.Uplink.BytesPerSecond())
	case UplinkTC:
		if l.inCluster() {
			return out, fmt.Errorf("the %s uplink cannot shape a cluster's pods; use %s, which every byte of config between the cluster's config services and its pods crosses", UplinkTC, UplinkTokenBucket)
		}
		if l.link, err = uplink.NewTC(l.sc.Cluster.Uplink.BytesPerSecond()); err != nil {
			return out, err
		}
	default:
		return out, fmt.Errorf("unknown uplink %q: want %s or %s", l.uplink, UplinkTokenBucket, UplinkTC)
	}
	defer l.link.Close()
	if l.inCluster() {
		l.notef("uplink: the token bucket in the runner, which every byte of config between the cluster's config services and its pods crosses (tc cannot shape the pods' traffic here)")
	}
	var system liveSystem
	switch l.system {
	case sim.Baseline:
		system = &baselineSystem{run: l}
	case sim.Reference:
		system = &referenceSystem{run: l}
	default:
		return out, fmt.Errorf("unknown system %q", l.system)
	}
	// One goroutine owns the recorder; it stops after everything else.
	rec := metrics.NewRecorder()
	l.feed = make(chan func(*metrics.Recorder), 8192)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for f := range l.feed {
			f(rec)
		}
	}()
	closeFeed := sync.OnceFunc(func() { close(l.feed); <-recorded })
	defer closeFeed()
	// Stop in order: everything that runs on ctx, then the system.
	var running sync.WaitGroup
	defer func() {
		cancel()
		running.Wait()
		l.timersWg.Wait()
		system.stop()
	}()

	l.step(1, fmt.Sprintf(": %s of config", l.sc.Config.TotalSize))
	if err := system.install(ctx); err != nil {
		return out, fmt.Errorf("install: %w", err)
	}

	l.step(2, fmt.Sprintf(": %d Running", l.sc.Cluster.Pods))
	d := l.cluster.GamePods(l.cluster.Namespace, gameName, gameLabels, int32(l.sc.Cluster.Pods))
	// Ready only with config, as the simulator's pods: a rollout waits.
	d.Spec.Template.Spec.ReadinessGates = append(d.Spec.Template.Spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: pod.ConfigReady})
	if l.inCluster() {
		if err := l.inClusterGamePods(ctx, d, system.podArgs()); err != nil {
			return out, err
		}
	}
	if _, err := l.kube.AppsV1().Deployments(l.cluster.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return out, err
	}
	if err := l.waitFor(ctx, 2*time.Minute, "game pods Running", func() (bool, string) {
		n, err := l.runningPods(ctx)
		return err == nil && n == l.sc.Cluster.Pods, fmt.Sprintf("%d of %d", n, l.sc.Cluster.Pods)
	}); err != nil {
		return out, err
	}

	l.step(3, "")
	source, err := system.start(ctx)
	if err != nil {
		return out, fmt.Errorf("start: %w", err)
	}
	controllers, err := l.controllers(ctx)
	if err != nil {
		return out, fmt.Errorf("controllers: %w", err)
	}

	l.step(4, "")
	lb := load.NewBalancer(l.sc.Workload.HealthCheck, "/healthz")
	events := pod.Events{
		Started: func(p *pod.Pod) { lb.Add(p.Addr()) },
		Stopped: func(p *pod.Pod) { lb.Retire(p.Addr()) },
		Loaded: func(p *pod.Pod, at time.Time, took time.Duration, uplinkBytes int64) {
			if l.started(p.Created) {
				t := l.since(at)
				l.record(func(r *metrics.Recorder) { r.PodConfigLoaded(t, took, float64(uplinkBytes)) })
			}
		},
		Failed: func(p *pod.Pod, err error) { l.notef("pod %s: %v", p.Name, err) },
	}
	var pods gamePods
	if l.inCluster() {
		pods = pod.NewObserver(pod.ObserverOptions{Client: l.kube, Namespace: l.cluster.Namespace, Selector: gameSelector, Port: gamePort, Events: events})
	} else {
		pods = pod.NewRealizer(pod.RealizerOptions{
			Client: l.kube, Namespace: l.cluster.Namespace, Selector: gameSelector, Source: source,
			Game: pod.GameOptions{
				Capacity:    l.sc.Workload.PodCapacity.PerSecond(),
				BaseLatency: l.sc.Workload.BaseLatency.D(),
				MaxQueue:    l.sc.Model.Pods.MaxQueue.D(),
				Seed:        l.sc.Seed,
			},
			Events: events,
		})
	}
	l.podsMu.Lock()
	l.pods = pods
	l.podsMu.Unlock()
	running.Add(2)
	go func() { defer running.Done(); pods.Run(ctx) }() //nolint:errcheck // nil when ctx ends
	go func() { defer running.Done(); lb.Run(ctx) }()
	want := l.sc.Cluster.Pods
	if err := l.waitFor(ctx, 2*time.Minute, "pods in the balancer's rotation", func() (bool, string) {
		_, ready := pods.Pods()
		return lb.InRotation() == want, fmt.Sprintf("%d with config, %d of %d in rotation", ready, lb.InRotation(), want)
	}); err != nil {
		return out, err
	}

	var clusterPods []byte
	if l.inCluster() {
		if clusterPods, err = l.listClusterPods(ctx); err != nil {
			return out, err
		}
	}
	// Time zero: load, churn and sampling start together.
	l.startMu.Lock()
	l.start = time.Now()
	l.startMu.Unlock()
	runCtx, stopRun := context.WithTimeout(ctx, l.sc.Duration.D())
	defer stopRun()
	lbListener, err := loopback()
	if err != nil {
		return out, err
	}
	lbURL := serveHTTP(ctx, &running, lb, lbListener)
	var raw bytes.Buffer
	attackErr := make(chan error, 1)
	go func() {
		attackErr <- load.Attack(runCtx, load.AttackOptions{
			Target:     lbURL + "/play",
			Rate:       int(math.Round(l.sc.Workload.RequestRate.PerSecond())),
			Duration:   l.sc.Duration.D(),
			Timeout:    l.sc.Workload.Timeout.D(),
			Start:      l.start,
			Retries:    l.sc.Model.Players.Retries,
			RetryDelay: l.sc.Model.Players.RetryDelay.D(),
		}, func(start, latency time.Duration, ok bool) {
			l.record(func(r *metrics.Recorder) { r.Request(start, latency, ok) })
		}, &raw)
	}()
	churn := &liveChurn{run: l, system: system, pods: pods, controllers: controllers}
	if controllers != nil {
		running.Add(1)
		go func() {
			defer running.Done()
			if err := controllers.Run(runCtx); err != nil && runCtx.Err() == nil {
				l.notef("controllers stopped: %v", err)
			}
		}()
	}
	running.Add(2)
	go func() { defer running.Done(); churn.play(runCtx) }()
	go func() { defer running.Done(); l.sample(runCtx, system, pods, lb) }()
	err = <-attackErr
	if parent.Err() != nil {
		return out, parent.Err()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return out, err
	}
	<-runCtx.Done()

	l.step(len(liveSteps)-1, " to "+l.dir)
	cancel()
	running.Wait()
	closeFeed()
	run := metrics.Run{Scenario: l.sc.Metadata.Name, Mode: l.target.Name(), System: string(l.system), Seed: l.sc.Seed, Duration: l.sc.Duration.D()}
	summary := rec.Summary(run)
	var summaryJSON, series bytes.Buffer
	if err := summary.Write(&summaryJSON); err != nil {
		return out, err
	}
	if err := rec.WriteTimeseries(&series); err != nil {
		return out, err
	}
	var levelSeries bytes.Buffer
	if err := rec.WriteLevelSeries(&levelSeries); err != nil {
		return out, err
	}
	var vegetaReport bytes.Buffer
	if err := load.Report(bytes.NewReader(raw.Bytes()), &vegetaReport); err != nil {
		return out, err
	}
	notes := strings.Join(l.notes, "\n")
	if notes != "" {
		notes += "\n"
	}
	files := []resultFile{
		{"summary.json", summaryJSON.Bytes()},
		{"timeseries.csv", series.Bytes()},
		{"priority-levels.csv", levelSeries.Bytes()},
		{"vegeta.bin", raw.Bytes()},
		{"vegeta.txt", vegetaReport.Bytes()},
		{"scrapes.csv", l.scrapes.Bytes()},
		{"notes.txt", []byte(notes)},
	}
	if clusterPods != nil {
		files = append(files, resultFile{"cluster-pods.txt", clusterPods})
	}
	if err := writeFiles(l.dir, files...); err != nil {
		return out, err
	}
	return LiveOutput{System: l.system, Dir: l.dir, Summary: summary}, nil
}

// controllers sets up the scenario's declared controllers, to be played
// from time zero; nil when it declares none. Each request's outcome goes
// to the recorder, per controller and priority level.
func (l *liveRun) controllers(ctx context.Context) (*driver.Driver, error) {
	if len(l.sc.Controllers) == 0 {
		return nil, nil
	}
	d, err := driver.New(driver.Options{
		Admin: l.cluster.Admin, Namespace: l.cluster.Namespace, PodSelector: gameSelector, Scenario: l.sc,
		Record: func(r driver.Result) {
			if !l.started(r.At) {
				return // the informers' first lists, before time zero
			}
			at := l.since(r.At)
			l.record(func(rec *metrics.Recorder) {
				rec.APIClientRequest(at, r.Controller, r.Level, r.Throttled)
				if !r.Throttled {
					rec.APIClientLatency(r.Controller, r.Level, r.Latency)
				}
			})
		},
		Note: l.notef,
	})
	if err != nil {
		return nil, err
	}
	return d, d.Setup(ctx)
}

// runningPods counts the game pods that are Running and not being
// deleted.
func (l *liveRun) runningPods(ctx context.Context) (int, error) {
	list, err := l.kube.CoreV1().Pods(l.cluster.Namespace).List(ctx, metav1.ListOptions{LabelSelector: gameSelector})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range list.Items {
		if p.Status.Phase == "Running" && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n, nil
}

// waitFor polls done every 250 ms until it is true, showing its status.
func (l *liveRun) waitFor(ctx context.Context, timeout time.Duration, what string, done func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, status := done()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %s", timeout, what, status)
		}
		if !ctxsleep.Sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// sample records, every second, the pods, the uplink's egress, and the
// API server's and etcd's counters; logs those and the system's own
// metrics into scrapes.csv; and shows progress every 10 s.
func (l *liveRun) sample(ctx context.Context, system liveSystem, pods gamePods, lb *load.Balancer) {
	transport, err := rest.TransportFor(l.cluster.Admin)
	if err != nil {
		l.notef("no API server metrics: %v", err)
	}
	apiClient := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	plain := &http.Client{Timeout: 5 * time.Second}
	level := map[string]string{"priority_level": l.cluster.OperatorPriorityLevel}
	var lastEgress int64
	var lastT time.Duration // of the last sample: ticks can come late
	var lastAPI, last429, lastLeader float64
	levels := flowControl{follow: map[string]bool{}}
	for _, c := range l.sc.Controllers {
		name, _ := l.sc.LevelOf(c)
		levels.follow[name] = true
	}
	scrapeFailed := onceEach{note: func(what string, err error) {
		l.notef("scraping %s failed (first failure; the run goes on): %v", what, err)
	}}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		first := i == 0 // takes the counters' starting values
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		now := time.Now()
		t := l.since(now)
		total, ready := pods.Pods()
		egress := l.link.Bytes()
		delta, from := float64(egress-lastEgress), lastT
		lastEgress, lastT = egress, t
		var api, n429, leader float64
		apiOK, etcdOK := false, false
		var levelsNow func(*metrics.Recorder)
		if fams, err := metrics.Scrape(ctx, apiClient, l.cluster.Admin.Host+"/metrics"); err == nil {
			l.scrapes.Add(t, "kube-apiserver", fams, "apiserver_flowcontrol_", level)
			n429 = fams.Sum("apiserver_flowcontrol_rejected_requests_total", level)
			api = fams.Sum("apiserver_flowcontrol_dispatched_requests_total", level) + n429
			apiOK = true
			levelsNow = levels.scraped(t, fams, first)
		} else if ctx.Err() == nil {
			scrapeFailed.report("kube-apiserver", err)
		}
		if l.cluster.EtcdMetrics != "" {
			if fams, err := metrics.Scrape(ctx, plain, l.cluster.EtcdMetrics); err == nil {
				l.scrapes.Add(t, "etcd", fams, "etcd_server_", nil)
				leader, etcdOK = fams.Sum("etcd_server_leader_changes_seen_total", nil), true
			} else if ctx.Err() == nil {
				scrapeFailed.report("etcd", err)
			}
		}
		for name, e := range system.metrics() {
			if fams, err := metrics.Scrape(ctx, plain, e.url); err == nil {
				l.scrapes.Add(t, name, fams, e.prefix, nil)
			} else if ctx.Err() == nil {
				scrapeFailed.report(name, err)
			}
		}
		// The deltas are taken now: the closure runs later, on the
		// recorder's goroutine.
		apiDelta, n429Delta, leaderDelta := int64(api-lastAPI), int64(n429-last429), int64(leader-lastLeader)
		countAPI, countEtcd := apiOK && !first, etcdOK && !first
		l.record(func(r *metrics.Recorder) {
			r.Pods(t, total, ready)
			if !first { // bytes before time zero are the setup's
				r.Egress(from, t, delta)
			}
			if countAPI {
				r.APIRequests(t, apiDelta, n429Delta)
			}
			if countEtcd {
				r.Elections(t, leaderDelta)
			}
			if levelsNow != nil {
				levelsNow(r)
			}
		})
		if apiOK {
			lastAPI, last429 = api, n429
		}
		if etcdOK {
			lastLeader = leader
		}
		if i%10 == 0 && !first {
			l.stepAt(stepRun, t, fmt.Sprintf(": %s of %s, pods %d (%d with config, %d in rotation), egress %.1f MB/s, operator API requests %.0f (429: %.0f)",
				t.Truncate(time.Second), l.sc.Duration, total, ready, lb.InRotation(), delta/1e6, api, n429))
		}
	}
}

// flowControl follows kube-apiserver's API Priority and Fairness in the
// priority levels of the scenario's controllers, from its metrics: the
// seats each level has executing at each scrape, and the queue waits its
// histogram counted between scrapes (of every client in the level).
type flowControl struct {
	follow map[string]bool
	waits  map[string]metrics.Buckets // each level's at the last scrape
}

const (
	seatsMetric = "apiserver_flowcontrol_current_executing_seats"
	waitsMetric = "apiserver_flowcontrol_request_wait_duration_seconds"
)

// scraped takes one scrape at t and returns what to record of it. The
// first scrape only sets the starting point of the waits: those before
// time zero are the setup's.
func (fc *flowControl) scraped(t time.Duration, fams metrics.Families, first bool) func(*metrics.Recorder) {
	seats := map[string]int{}
	for _, level := range fams.LabelValues(seatsMetric, "priority_level") {
		if !fc.follow[level] {
			continue
		}
		seats[level] = int(fams.Sum(seatsMetric, map[string]string{"priority_level": level}))
	}
	waits := map[string]metrics.Buckets{}
	for _, level := range fams.LabelValues(waitsMetric, "priority_level") {
		if !fc.follow[level] {
			continue
		}
		now := fams.Histogram(waitsMetric, map[string]string{"priority_level": level})
		if !first {
			waits[level] = now.Since(fc.waits[level])
		}
		if fc.waits == nil {
			fc.waits = map[string]metrics.Buckets{}
		}
		fc.waits[level] = now
	}
	return func(r *metrics.Recorder) {
		if first {
			return
		}
		for level, n := range seats {
			r.LevelSeats(t, level, n)
		}
		for level, b := range waits {
			r.LevelWaits(level, b)
		}
	}
}

// onceEach reports the first failure of each thing only.
type onceEach struct {
	note func(what string, err error)
	seen map[string]bool
}

func (o *onceEach) report(what string, err error) {
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	if !o.seen[what] {
		o.seen[what] = true
		o.note(what, err)
	}
}
