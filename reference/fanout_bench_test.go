package reference

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/churnlab/churnlab/experiments/controlplane"
	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/server"
	"github.com/churnlab/churnlab/reference/store"
)

// fanoutPayload is the config each write carries, the same for both.
var fanoutPayload = []byte(strings.Repeat("x", 1024))

// streamsPerConn is how many streams share one client connection, as
// pods share their node's agent connection.
const streamsPerConn = 100

var fanoutSizes = []int{180, 1000, 10000}

func benchEtcd(b testing.TB) *controlplane.Etcd {
	b.Helper()
	bin, err := controlplane.EnsureBuilt(context.Background(), os.Stderr)
	if err != nil {
		b.Fatal(err)
	}
	e, err := controlplane.StartEtcd(context.Background(), bin)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Stop)
	return e
}

// latencies gathers, per write, when each stream saw it.
type latencies struct {
	mu      sync.Mutex
	samples []time.Duration
	pending int
	done    chan struct{}
	start   time.Time
	version uint64
}

// expect arms l for the next write: n streams must each see a version of
// at least minVersion. It is called before the write, so that no stream
// can see it first.
func (l *latencies) expect(n int, minVersion uint64) {
	l.mu.Lock()
	l.pending, l.version, l.done = n, minVersion, make(chan struct{})
	l.start = time.Now()
	l.mu.Unlock()
}

func (l *latencies) saw(version uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if version < l.version || l.pending == 0 {
		return
	}
	l.samples = append(l.samples, time.Since(l.start))
	if l.pending--; l.pending == 0 {
		close(l.done)
	}
}

// report states the p99 of every stream's delay over every write, and the
// server's memory growth per stream.
func (l *latencies) report(b *testing.B, streams int, serverBytes float64) {
	slices.Sort(l.samples)
	if len(l.samples) > 0 {
		p99 := l.samples[min(len(l.samples)-1, len(l.samples)*99/100)]
		b.ReportMetric(float64(p99)/float64(time.Millisecond), "p99-ms")
	}
	b.ReportMetric(serverBytes/float64(streams), "bytes/stream")
}

// BenchmarkFanout: one write of a hunt until every stream watching it has
// the new version, through a configd replica backed by etcd. The replica
// runs in a process of its own, as etcd does in BenchmarkEtcdWatchFanout,
// so that bytes/stream is the server's resident memory per stream for
// both.
func BenchmarkFanout(b *testing.B) {
	e := benchEtcd(b)
	for _, n := range fanoutSizes {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := store.OpenEtcd([]string{e.Endpoint})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			hunt := fmt.Sprintf("fanout-%d", n)
			last, err := st.Put(ctx, hunt, nil, fanoutPayload)
			if err != nil {
				b.Fatal(err)
			}
			addr, pid := startReplicaProcess(b, e.Endpoint)
			time.Sleep(500 * time.Millisecond) // let the replica's heap settle
			serverBefore := rss(b, pid)

			lat := &latencies{}
			var ready sync.WaitGroup
			for c := 0; c*streamsPerConn < n; c++ {
				conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				client := pb.NewConfigStreamClient(conn)
				for range min(streamsPerConn, n-c*streamsPerConn) {
					ready.Add(1)
					var stream pb.ConfigStream_WatchClient
					for try := 0; ; try++ { // the replica may not have synced yet
						stream, err = client.Watch(ctx, &pb.WatchRequest{Selector: "hunt=" + hunt})
						if err == nil {
							if _, err = stream.Recv(); err == nil {
								break
							}
						}
						if try == 100 {
							b.Fatal(err)
						}
						time.Sleep(20 * time.Millisecond)
					}
					go func() {
						for synced := false; ; {
							u, err := stream.Recv()
							if err != nil {
								return
							}
							if u.Synced && !synced {
								synced = true
								ready.Done()
							} else if u.Hunt == hunt {
								lat.saw(u.Version)
							}
						}
					}()
				}
			}
			ready.Wait()
			b.ResetTimer()
			for range b.N {
				lat.expect(n, last+1)
				if last, err = st.Put(ctx, hunt, nil, fanoutPayload); err != nil {
					b.Fatal(err)
				}
				<-lat.done
			}
			b.StopTimer()
			lat.report(b, n, float64(rss(b, pid)-serverBefore))
		})
	}
}

// startReplicaProcess runs a configd replica on etcd in a child process
// (this test binary, in TestReplicaProcessHelper) until the benchmark ends.
func startReplicaProcess(b testing.TB, etcd string) (addr string, pid int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaProcessHelper$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "CHURNLAB_REPLICA_ETCD="+etcd)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return a, cmd.Process.Pid
		}
	}
	b.Fatal("replica process did not start")
	return "", 0
}

// TestReplicaProcessHelper is the child of startReplicaProcess.
func TestReplicaProcessHelper(t *testing.T) {
	endpoint := os.Getenv("CHURNLAB_REPLICA_ETCD")
	if endpoint == "" {
		t.Skip("run by the fan-out benchmarks")
	}
	st, err := store.OpenEtcd([]string{endpoint})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening %s\n", l.Addr())
	_ = srv.Serve(context.Background(), l) // until the parent kills us
}

// BenchmarkEtcdWatchFanout is the same fan-out through plain etcd
// watches, one per agent, each on its own gRPC stream (100 to a
// connection, as for configd), with the same payload.
func BenchmarkEtcdWatchFanout(b *testing.B) {
	e := benchEtcd(b)
	for _, n := range fanoutSizes {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			key := fmt.Sprintf("/bench/fanout-%d", n)
			writer, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer writer.Close()
			etcdBefore := rss(b, e.Pid())
			lat := &latencies{}
			for c := 0; c*streamsPerConn < n; c++ {
				cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				defer cli.Close()
				for s := range min(streamsPerConn, n-c*streamsPerConn) {
					// clientv3 shares a gRPC watch stream among watchers
					// whose outgoing metadata match; distinct metadata give
					// each watcher its own stream, as separate agents have.
					wctx := clientv3.WithRequireLeader(metadata.AppendToOutgoingContext(ctx, "agent", strconv.Itoa(c*streamsPerConn+s)))
					wch := cli.Watch(wctx, key, clientv3.WithCreatedNotify())
					if resp := <-wch; !resp.Created {
						b.Fatalf("watch not created: %v", resp.Err())
					}
					go func() {
						for resp := range wch {
							for _, ev := range resp.Events {
								lat.saw(uint64(ev.Kv.ModRevision))
							}
						}
					}()
				}
			}
			b.ResetTimer()
			var last uint64
			for range b.N {
				lat.expect(n, last+1)
				resp, err := writer.Put(ctx, key, string(fanoutPayload))
				if err != nil {
					b.Fatal(err)
				}
				last = uint64(resp.Header.Revision)
				<-lat.done
			}
			b.StopTimer()
			lat.report(b, n, float64(rss(b, e.Pid())-etcdBefore))
		})
	}
}

// rss returns a process's resident set in bytes.
func rss(b testing.TB, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
