package pod

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/churnlab/churnlab/internal/ctxsleep"
)

// InPodOptions configures RunInPod.
type InPodOptions struct {
	Client          kubernetes.Interface // the pod's own service account
	Namespace, Name string               // the pod's
	Game            GameOptions          // Listen: where the balancer reaches the pod
	Source          Source
	// Failed, if set, hears what goes wrong on the way (a failed fetch
	// that Source gives up on, a condition that could not be set); the
	// pod goes on.
	Failed func(err error)
}

// RunInPod is a game pod's life in its own container (cmd/podagent): it
// serves the game, follows its own Pod object, gets its config from
// Source, then marks itself ConfigReady, with when the config came in and
// what it cost the uplink for the runner's Observer, and serves until
// ctx ends.
func RunInPod(ctx context.Context, opts InPodOptions) error {
	if opts.Client == nil || opts.Namespace == "" || opts.Name == "" || opts.Source == nil {
		return errors.New("pod: RunInPod needs a client, the pod's namespace and name, and a source")
	}
	failed := opts.Failed
	if failed == nil {
		failed = func(error) {}
	}
	game, err := StartGame(opts.Game)
	if err != nil {
		return err
	}
	defer game.Close()
	self := make(chan *Pod, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := make(chan error, 1)
	go func() {
		var own *Pod // the informer's handlers run one at a time
		watched <- watch(watchCtx, opts.Client, opts.Namespace, "", fields.OneTermEqualSelector("metadata.name", opts.Name).String(),
			func(o *corev1.Pod) {
				if own == nil {
					own = newPod(o, game.Addr())
					own.game = game
					self <- own
					return
				}
				own.update(o)
			}, func(types.UID) {})
	}()
	var p *Pod
	select {
	case <-ctx.Done():
		return nil
	case err := <-watched:
		return fmt.Errorf("pod: watching pod %s/%s: %v", opts.Namespace, opts.Name, err)
	case p = <-self:
	}
	err = opts.Source.Serve(ctx, p, func(uplinkBytes int64) {
		game.SetReady()
		p.ready.Store(true)
		at := time.Now()
		// The condition is how the pod becomes Ready, so it is set
		// whatever it takes: the API server may be throttling.
		for {
			err := markConfigReady(ctx, opts.Client, opts.Namespace, opts.Name, at, uplinkBytes)
			if err == nil || !ctxsleep.Sleep(ctx, retryEvery) {
				return
			}
			failed(err)
		}
	})
	if err != nil {
		failed(err)
	}
	<-ctx.Done()
	opts.Source.Unload(p)
	stopWatch()
	<-watched
	return nil
}
