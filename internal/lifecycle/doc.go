// Package lifecycle holds prenv's use cases — Up, Down — one file each,
// called alike by the CLI, the server and (later) the sweeper. Runs for one
// environment are serialized by a lock; every request gets a sequence number
// and a run whose number is no longer the newest stops at the next step
// boundary (latest wins). Each step first reads what exists and adopts it, so
// a retry after a crash converges instead of duplicating.
package lifecycle
