package sim

import "github.com/churnlab/churnlab/experiments/scenario"

// etcdLeader is the control plane's etcd leader as a raft loop with group
// commit. Requests wait while a batch is in progress; each batch takes
// one WAL fsync and one round trip to the followers, plus the leader's
// time for every request in it: a fixed cost per write or read, and the
// bytes a read returns at the leader's read bandwidth. Under load batches
// grow and the loop falls behind, and so do heartbeats (F10).
//
// Every heartbeat interval the leader starts a round (a heartbeat whose
// ack needs the loop to be free, then one commit); a round longer than
// the election timeout makes a follower campaign, which the run counts as
// an election. SEED-FACTS F10's "elections climbed from 12 ms to 800 ms"
// is read as these rounds' p99: see REPORT.md.
type etcdLeader struct {
	w        *World
	m        scenario.EtcdModel
	timeout  Time
	pending  []etcdRequest
	busy     bool
	batchEnd Time
	onCommit Action
	campaign Time // when the last election started; rounds overrunning before its timeout belong to it
	served   int64
}

type etcdRequest struct {
	arrived Time
	cost    Time
	done    func(now Time)
}

func newEtcdLeader(w *World) *etcdLeader {
	e := &etcdLeader{w: w, m: w.sc.Model.Etcd, timeout: Time(w.sc.Cluster.Etcd.ElectionTimeout)}
	e.onCommit = e.commit
	return e
}

func (e *etcdLeader) start() {
	e.w.eng.At(Time(e.w.sc.Cluster.Etcd.HeartbeatInterval), e.heartbeat, 0)
}

// write commits one write and calls done when it is applied.
func (e *etcdLeader) write(now Time, done func(Time)) {
	e.submit(now, Time(e.m.WriteCost), done)
}

// read serves a linearizable read returning bytes and calls done.
func (e *etcdLeader) read(now Time, bytes float64, done func(Time)) {
	e.submit(now, Time(e.m.ReadCost)+Time(bytes/e.m.ReadBandwidth.BytesPerSecond()*float64(Second)), done)
}

func (e *etcdLeader) submit(now Time, cost Time, done func(Time)) {
	e.pending = append(e.pending, etcdRequest{arrived: now, cost: cost, done: done})
	if !e.busy {
		e.startBatch(now)
	}
}

func (e *etcdLeader) startBatch(now Time) {
	d := Time(e.m.Fsync) + Time(e.m.RTT)
	for _, r := range e.pending {
		d += r.cost
	}
	e.busy, e.batchEnd = true, now+d
	e.w.eng.At(e.batchEnd, e.onCommit, int64(len(e.pending)))
}

func (e *etcdLeader) commit(now Time, n int64) {
	batch := e.pending[:n]
	for _, r := range batch {
		e.w.rec.EtcdRequest(dur(now - r.arrived))
		e.served++
		r.done(now)
	}
	e.pending = append(e.pending[:0], e.pending[n:]...)
	e.busy = false
	if len(e.pending) > 0 {
		e.startBatch(now)
	}
}

// heartbeat measures one leader round started now: the wait for the loop,
// then a commit.
func (e *etcdLeader) heartbeat(now Time, _ int64) {
	e.w.eng.At(now+Time(e.w.sc.Cluster.Etcd.HeartbeatInterval), e.heartbeat, 0)
	free := now
	if e.busy {
		free = e.batchEnd
	}
	round := free - now + Time(e.m.Fsync) + Time(e.m.RTT)
	election := round > e.timeout && (e.campaign == 0 || now >= e.campaign+e.timeout)
	if election {
		e.campaign = now
	}
	e.w.rec.EtcdRound(dur(now), dur(round), election)
}
