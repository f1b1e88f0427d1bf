package rehearsal

import "time"

// SamplesTaken is how many samples w has taken: tests wait on it to know
// the watcher has seen a state they set up, instead of sleeping.
func SamplesTaken(w *Watch) int {
	n, _ := w.rec.progress()
	return n
}

// SamplingTime is the time w has spent in its sample queries.
func SamplingTime(w *Watch) time.Duration {
	_, d := w.rec.progress()
	return d
}

// WatcherPID is the process id of w's backend, whose CPU time the
// benchmark reads.
func WatcherPID(w *Watch) uint32 { return w.conn.PgConn().PID() }
