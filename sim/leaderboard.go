package sim

import "math/rand/v2"

// leaderboard is the hunt leaderboard job (F8, T7, A4). Every period it
// reads every score through the game API, opsPerUpdate reads, and
// publishes the leaderboard only if all of them succeed: one failed read
// abandons the update. Each read succeeds as often as game requests did
// in the last second, so while the cluster fails requests the
// leaderboard freezes.
type leaderboard struct {
	w      *World
	rng    *rand.Rand
	period Time
	ops    int
	onTick Action
}

func newLeaderboard(w *World) *leaderboard {
	m := w.sc.Model.Leaderboard
	l := &leaderboard{w: w, rng: w.seed.Stream("leaderboard"), period: Time(m.Period), ops: m.OpsPerUpdate}
	l.onTick = l.tick
	return l
}

func (l *leaderboard) start() { l.w.eng.At(l.period, l.onTick, 0) }

// frozenAfter: a leaderboard not updated for this long counts as frozen.
func (l *leaderboard) frozenAfter() Time { return 3 * l.period }

func (l *leaderboard) tick(now Time, _ int64) {
	l.w.eng.At(now+l.period, l.onTick, 0)
	ok := l.w.traffic.successRatio()
	all := 1.0
	for range l.ops {
		all *= ok
	}
	if l.rng.Float64() < all {
		l.w.rec.LeaderboardUpdated(dur(now), dur(l.frozenAfter()))
	}
}
