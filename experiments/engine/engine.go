package engine

import (
	"github.com/churnlab/churnlab/internal/caps"
	"github.com/churnlab/churnlab/internal/debian"
	"github.com/churnlab/churnlab/internal/lines"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Engine is a container engine that answers.
type Engine struct {
	// Env is what kind's provider and the docker CLI need in their
	// environment to reach it: DOCKER_HOST for the private daemon,
	// KIND_EXPERIMENTAL_PROVIDER for Podman; empty for the user's Docker.
	Env []string
	// Private says churnlab's own daemon serves it; Started, that this
	// process started that daemon, so Stop stops it.
	Private, Started bool
	// Shimmed says containers run through capshim.
	Shimmed bool
	stop    func() error
}

func (e *Engine) String() string {
	switch {
	case !e.Private && len(e.Env) > 0:
		return "Podman"
	case !e.Private:
		return "your Docker engine"
	case e.Shimmed:
		return "churnlab's private dockerd (" + strings.TrimPrefix(e.Env[0], "DOCKER_HOST=") + ", through capshim)"
	}
	return "churnlab's private dockerd (" + strings.TrimPrefix(e.Env[0], "DOCKER_HOST=") + ")"
}

// Stop stops the private daemon when this process started it, and
// removes its state; otherwise it does nothing. Safe to call twice.
func (e *Engine) Stop() error {
	if e.stop == nil {
		return nil
	}
	stop := e.stop
	e.stop = nil
	return stop()
}

// Options say where the private daemon lives.
type Options struct {
	// State holds its data root, config, pid file and log; ExecRoot its
	// socket and runtime state (short, for unix socket paths).
	State, ExecRoot string
	// Capshim is the cmd/capshim binary, used where the host's bounding
	// set is short.
	Capshim string
	// Keep leaves a daemon this process starts running, for later runs.
	Keep     bool
	Progress io.Writer
}

// DefaultExecRoot is the private daemon's exec root: one per machine,
// short enough for the unix sockets under it.
const DefaultExecRoot = "/run/churnlab-engine"

// Socket is the private daemon's socket.
func (o Options) Socket() string { return filepath.Join(o.ExecRoot, "docker.sock") }

func (o Options) host() string { return "unix://" + o.Socket() }

// Ensure returns an engine that answers: the user's, when one does, else
// the private daemon, started if it is not running.
func Ensure(ctx context.Context, opts Options) (*Engine, error) {
	if e := usersEngine(ctx); e != nil {
		lines.Say(opts.Progress, "engine: using %s", e)
		return e, nil
	}
	private := []string{"DOCKER_HOST=" + opts.host()}
	if answers(ctx, private) {
		e := &Engine{Env: private, Private: true, Shimmed: shimmed(opts)}
		lines.Say(opts.Progress, "engine: using %s, already running", e)
		return e, nil
	}
	return start(ctx, opts)
}

// usersEngine is a Docker or Podman that answers as the user has it set
// up, or nil.
func usersEngine(ctx context.Context) *Engine {
	if os.Getenv("DOCKER_HOST") != "" || socketExists("/var/run/docker.sock") {
		if answers(ctx, nil) {
			return &Engine{}
		}
	}
	if _, err := exec.LookPath("podman"); err == nil {
		if exec.CommandContext(ctx, "podman", "info").Run() == nil {
			return &Engine{Env: []string{"KIND_EXPERIMENTAL_PROVIDER=podman"}}
		}
	}
	return nil
}

func socketExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// answers says whether `docker info` succeeds with env added.
func answers(ctx context.Context, env []string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}")
	cmd.Env = append(os.Environ(), env...)
	return cmd.Run() == nil
}

// shimmed says whether the private daemon's config routes containers
// through capshim.
func shimmed(opts Options) bool {
	raw, err := os.ReadFile(filepath.Join(opts.State, "daemon.json"))
	return err == nil && strings.Contains(string(raw), runtimeName)
}

const runtimeName = "churnlab-capshim"

// daemonConfig is the private daemon's config file.
func daemonConfig(opts Options, missing []string) ([]byte, error) {
	config := map[string]any{
		"data-root":      filepath.Join(opts.State, "data"),
		"exec-root":      opts.ExecRoot,
		"pidfile":        filepath.Join(opts.State, "dockerd.pid"),
		"hosts":          []string{opts.host()},
		"bridge":         "none",
		"iptables":       false,
		"ip-masq":        false,
		"ip-forward":     false,
		"storage-driver": "overlay2",
		"log-driver":     "json-file",
		"log-opts":       map[string]string{"max-size": "10m", "max-file": "2"},
	}
	if len(missing) > 0 {
		config["default-runtime"] = runtimeName
		config["runtimes"] = map[string]any{runtimeName: map[string]any{
			"path":        opts.Capshim,
			"runtimeArgs": []string{"--capshim-runc=" + runcPath()},
		}}
	}
	return json.MarshalIndent(config, "", "  ")
}

func runcPath() string {
	if p, err := exec.LookPath("runc"); err == nil {
		return p
	}
	return "/usr/sbin/runc"
}

// start installs dockerd if need be and starts the private daemon.
func start(ctx context.Context, opts Options) (*Engine, error) {
	begin := time.Now()
	if err := debian.Ensure(ctx, "dockerd", "docker.io", "about 30 s", opts.Progress); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	ungrantable, err := caps.Ungrantable()
	if err != nil {
		return nil, err
	}
	missing := slices.Sorted(maps.Keys(ungrantable))
	if len(missing) > 0 {
		if _, err := os.Stat(opts.Capshim); err != nil {
			return nil, fmt.Errorf("engine: this host cannot grant %s, which privileged containers ask for, and the capability shim %s is missing (make capshim builds it)", strings.Join(missing, ", "), opts.Capshim)
		}
	}
	for _, dir := range []string{opts.State, opts.ExecRoot} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
	}
	config, err := daemonConfig(opts, missing)
	if err != nil {
		return nil, err
	}
	configFile := filepath.Join(opts.State, "daemon.json")
	if err := os.WriteFile(configFile, config, 0o600); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	logFile := filepath.Join(opts.State, "dockerd.log")
	log, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	defer log.Close()
	how := ""
	if len(missing) > 0 {
		how = fmt.Sprintf(", containers through capshim (this host cannot grant %s)", strings.Join(missing, ", "))
	}
	lines.Say(opts.Progress, "engine: starting a private dockerd on %s, state in %s%s (a few seconds)", opts.Socket(), opts.State, how)
	cmd := exec.Command("dockerd", "--config-file", configFile)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that a Ctrl-C at the terminal reaches
	// churnlab, which stops the daemon in order, and not the daemon first.
	// A daemon not kept stops, too, if churnlab is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !opts.Keep {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("engine: starting dockerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	env := []string{"DOCKER_HOST=" + opts.host()}
	e := &Engine{Env: env, Private: true, Started: true, Shimmed: len(missing) > 0}
	e.stop = func() error { return stopDaemon(env, cmd.Process, exited, opts) }
	deadline := time.Now().Add(60 * time.Second)
	for !answers(ctx, env) {
		select {
		case err := <-exited:
			exited <- err
			e.Stop()
			return nil, fmt.Errorf("engine: dockerd exited (%v) before it answered; its log %s ends:\n%s", err, logFile, tail(logFile, 10))
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("engine: dockerd did not answer on %s within 60 s; its log %s ends:\n%s", opts.Socket(), logFile, tail(logFile, 10))
		}
	}
	lines.Say(opts.Progress, "engine: dockerd answers (pid %d, %s)", cmd.Process.Pid, time.Since(begin).Round(100*time.Millisecond))
	if opts.Keep {
		e.stop = nil
		lines.Say(opts.Progress, "engine: it stays up for later runs: `churnlab kind engine down` stops it")
	}
	return e, nil
}

// stopDaemon stops the private daemon (SIGTERM, then SIGKILL after 30 s)
// and removes its state: what it held was this run's. Its networks go
// first: dockerd leaves their bridges on the host when it stops.
func stopDaemon(env []string, p *os.Process, exited chan error, opts Options) error {
	removeNetworks(env)
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		p.Kill()
		<-exited
	}
	return removeState(opts)
}

// removeNetworks removes the networks made on the daemon that env
// reaches (kind's), with their bridges.
func removeNetworks(env []string) {
	docker := func(args ...string) ([]byte, error) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), env...)
		return cmd.Output()
	}
	ids, err := docker("network", "ls", "--quiet", "--filter", "type=custom")
	if err != nil {
		return
	}
	if ids := strings.Fields(string(ids)); len(ids) > 0 {
		docker(append([]string{"network", "rm"}, ids...)...)
	}
}

// removeState removes the private daemon's state, once no daemon runs on
// it. Overlay mounts under the data root go first, or RemoveAll fails on
// them.
func removeState(opts Options) error {
	data := filepath.Join(opts.State, "data")
	unmountUnder(data)
	unmountUnder(opts.ExecRoot)
	var errs []error
	for _, dir := range []string{opts.State, opts.ExecRoot} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// StopPrivate stops a private daemon that an earlier process started and
// kept, found by its pid file. It signals only a process that is dockerd
// running on the private daemon's own config file.
func StopPrivate(opts Options) (bool, error) {
	raw, err := os.ReadFile(filepath.Join(opts.State, "dockerd.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return false, fmt.Errorf("engine: pid file: %w", err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), filepath.Join(opts.State, "daemon.json")) {
		return false, removeState(opts)
	}
	removeNetworks([]string{"DOCKER_HOST=" + opts.host()})
	syscall.Kill(pid, syscall.SIGTERM)
	for range 300 {
		if syscall.Kill(pid, 0) != nil {
			return true, removeState(opts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(time.Second)
	return true, removeState(opts)
}

func tail(file string, n int) string {
	raw, _ := os.ReadFile(file)
	return lines.Last(string(raw), n)
}
