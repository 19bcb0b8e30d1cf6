package sim

import "github.com/churnlab/churnlab/experiments/scenario"

// etcdLeader is the control plane's etcd leader. Writes go through the
// raft loop, which commits them in batches (group commit): a batch takes
// one WAL fsync and one round trip to the followers, plus a fixed
// apply cost for each write.
// Writes that arrive during a batch wait for the next. Reads are served
// beside the loop by the MVCC store, one at a time: a fixed cost and the
// bytes they return at the read bandwidth. Under read load requests
// queue (the etcd saturation of L1); under write load the loop falls
// behind, and so do its heartbeats (F10).
//
// Every heartbeat interval the leader starts a round (a heartbeat whose
// ack needs the loop to be free, then one commit). Its followers are
// across the config store's uplink (etcd is the baseline's config store,
// F5), so a heartbeat also waits in the uplink's queue when config
// transfers saturate it (F6); a round longer than
// the election timeout makes a follower campaign, which the run counts as
// an election. SEED-FACTS F10's "elections climbed from 12 ms to 800 ms"
// is read as these rounds' p99: see REPORT.md.
type etcdLeader struct {
	w        *World
	m        scenario.EtcdModel
	timeout  Time
	pending  []etcdRequest // writes waiting for the next batch
	busy     bool
	batchEnd Time
	onCommit Action
	readFree Time // when the MVCC store has served every read so far
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

// write commits a write and calls done when it is applied.
func (e *etcdLeader) write(now Time, done func(Time)) {
	e.pending = append(e.pending, etcdRequest{arrived: now, cost: Time(e.m.WriteCost), done: done})
	if !e.busy {
		e.startBatch(now)
	}
}

// read serves a linearizable read returning bytes and calls done.
func (e *etcdLeader) read(now Time, bytes float64, done func(Time)) {
	cost := Time(e.m.ReadCost) + Time(bytes/e.m.ReadBandwidth.BytesPerSecond()*float64(Second))
	e.readFree = max(e.readFree, now) + cost
	e.w.eng.At(e.readFree, func(t Time, _ int64) {
		e.w.rec.EtcdRequest(dur(t - now))
		e.served++
		done(t)
	}, 0)
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
	for _, r := range e.pending[:n] {
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
	round := free - now + e.w.uplink.QueueDelay(now) + Time(e.m.Fsync) + Time(e.m.RTT)
	election := round > e.timeout && (e.campaign == 0 || now >= e.campaign+e.timeout)
	if election {
		e.campaign = now
	}
	e.w.rec.EtcdRound(dur(now), dur(round), election)
}
